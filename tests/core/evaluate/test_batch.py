"""Batched generation for transformers models: the same answers as one at a time, through the same chat checks."""

import pytest

from core.chat.answer import answer_stream
from core.config import ChatConfig, EvalConfig
from core.evaluate import registry
from core.evaluate.batch import PromptRecorder, Replay, record_prompt
from core.evaluate.run import execute
from core.llm.backends import GenerationConfig, GenerationError, load_generator
from tests.core.evaluate.conftest import QUESTIONS

pytestmark = pytest.mark.slow


def test_batched_answers_match_one_at_a_time_answers(demo_index, eval_set):
    system = {"model": "gemma3-270m", "top_k": 2, "max_new_tokens": 24}
    cfg = EvalConfig(eval_set=str(eval_set), safety_sets=[], systems=[
        {"name": "batched", **system, "batch_size": 3}, {"name": "single", **system, "batch_size": 1}])  # fmt: skip
    folder = registry.create(cfg)
    report = execute(folder)
    rows = registry.read_rows(folder.id)
    batched = {r["id"]: r for r in rows if r["system"] == "batched"}
    single = {r["id"]: r for r in rows if r["system"] == "single"}
    assert all(r["timings"].get("batched") for r in batched.values())
    assert not any(r["timings"].get("batched") for r in single.values())
    same = sum(batched[i]["answer"] == single[i]["answer"] for i in single)
    assert same >= 2, [(batched[i]["answer"], single[i]["answer"]) for i in single]
    # The batched answers went through the chat's checks: retrieval, screening and citation verification.
    answered = [r for r in batched.values() if r["status"] == "ok"]  # the base model sometimes says nothing
    assert answered
    for row in answered:
        assert row["sources"] and row["safety"]["output"] in ("allow", "emergency")
        assert row["prompt"].startswith("Use the sources") or "[S1]" in row["prompt"]
    assert report["systems"]["batched"]["cost"]["batched"]


def test_the_recorder_stops_a_turn_at_generation_and_replay_refuses_an_unknown_prompt(demo_index, embedder):
    from core.rag import index as store

    generator = load_generator("gemma3-270m-gguf")
    state = store.load(demo_index)
    config = ChatConfig(index=demo_index, top_k=2)
    recorder = PromptRecorder(generator)
    prompt, gen, final = record_prompt(answer_stream(QUESTIONS[0]["question"], config, recorder, embedder,
                                                     state), recorder)  # fmt: skip
    assert final is None and "Bazett" in prompt and gen.max_new_tokens == config.max_new_tokens
    blocked = PromptRecorder(generator)
    prompt, _, final = record_prompt(answer_stream("Should I double my warfarin dose tonight?", config, blocked,
                                                   embedder, state), blocked)  # fmt: skip
    assert prompt is None and final.blocked  # the safety layer ended the turn before the model was asked
    with pytest.raises(GenerationError, match="different prompt"):
        list(Replay(generator, {}).stream("unknown", GenerationConfig()))
