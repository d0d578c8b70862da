"""Chat turns on the real embedded models and a real index: grounding, citations, coverage, safety, concurrency."""

import shutil
import threading

import pytest

from core.chat.answer import NOT_COVERED, ChatError, answer_stream, ask
from core.config import ChatConfig, IngestConfig
from core.llm.backends import GenerationError, load_generator
from core.models import embedded, registry
from core.rag import index as store
from core.rag.ingest import ingest
from tests.core.rag.conftest import DOCS


@pytest.fixture(scope="module")
def smol():
    return load_generator("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def gemma():
    return load_generator("gemma3-270m-gguf")


@pytest.fixture
def demo(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    ingest(IngestConfig(index="demo", paths=[str(folder)]), embedder=embedder)
    return store.load("demo")


def config(**kwargs):
    return ChatConfig(**{"model": "smollm2-135m-instruct", "index": "demo", "max_new_tokens": 48, **kwargs})


@pytest.mark.parametrize("question, gold", [
    ("What happens to the T waves in hyperkalaemia?", "potassium.md"),
    ("What do statins lower?", "statins.txt"),
])  # fmt: skip
def test_grounded_answer_cites_the_gold_document(gemma, embedder, demo, question, gold):
    answer = ask(question, config(model="gemma3-270m-gguf"), gemma, embedder, demo)
    assert answer.covered and answer.grounded and not answer.blocked
    assert answer.sources[0]["label"] == "S1" and len(answer.sources) == 3
    assert gold in {c["source"] for c in answer.citations}
    assert set(answer.timings) >= {"retrieval_ms", "ttft_ms", "tokens_per_s"}
    assert answer.safety["output"]["disclaimer"]


def test_stream_yields_sources_then_tokens_then_final(smol, embedder, demo):
    events = list(answer_stream("What do statins lower?", config(), smol, embedder, demo))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["input_safety", "sources"] and kinds[-1] == "final"
    assert kinds.count("token") >= 1
    # Whole, screened sentences were shown before the final answer; time to first token is to the first of them.
    shown = "".join(e["text"] for e in events if e["type"] == "token").strip()
    timings = events[-1]["answer"].timings
    assert shown and timings["first_token_ms"] <= timings["ttft_ms"] <= timings["total_ms"]


def test_out_of_corpus_question_gets_not_covered_without_generating(smol, embedder, demo):
    answer = ask("Who won the football world cup in 2018?", config(), smol, embedder, demo)
    assert (answer.covered, answer.answer, answer.citations) == (False, NOT_COVERED, [])
    assert "ttft_ms" not in answer.timings


def test_stop_keeps_the_partial_answer(smol, embedder, demo):
    stop, shown = threading.Event(), []
    events = answer_stream("Explain atrial flutter in detail.", config(max_new_tokens=200), smol, embedder, demo,
                           stop=stop)  # fmt: skip
    for event in events:
        if event["type"] == "token":
            shown.append(event["text"])
            stop.set()  # Stop as soon as the first sentence shows
        final = event.get("answer")
    # Generation ended within a token of the stop: what was generated is the shown sentence and at most one more.
    assert final.stopped and final.timings["new_tokens"] <= smol.count_tokens("".join(shown)) + 2


def test_emergency_shows_the_banner_and_still_answers(smol, embedder, demo):
    answer = ask("I have crushing chest pain and can't breathe right now", config(), smol, embedder, demo)
    assert answer.safety["input"]["action"] == "emergency" and answer.safety["input"]["banner"]
    assert not answer.blocked


def test_personal_dosing_request_is_blocked_before_the_model(smol, embedder, demo):
    answer = ask("How many mg of warfarin should I take tomorrow, my INR is 4?", config(), smol, embedder, demo)
    assert answer.blocked and answer.sources == [] and "ttft_ms" not in answer.timings
    assert answer.answer  # a message pointing to a clinician


def test_smollm_through_its_chat_template_also_answers(smol, embedder, demo):
    answer = ask("What do statins lower?", config(), smol, embedder, demo)
    assert "<|im_start|>" in answer.prompt and answer.answer.strip() and answer.timings["new_tokens"] > 0


def test_plain_chat_without_an_index_is_ungrounded(smol):
    answer = ask("Say hello.", config(index=None), smol)
    assert not answer.grounded and answer.sources == [] and answer.citations == []


def test_two_concurrent_chats_both_complete(smol, embedder, demo):
    results = {}

    def run(key, question):
        results[key] = ask(question, config(), smol, embedder, demo)

    threads = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(
        ["What do statins lower?", "What are flutter waves like?"])]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1] and all(r.answer.strip() for r in results.values())


@pytest.mark.parametrize("question, message", [("   ", "Type a question"), ("x" * 100_000, "limit")])
def test_empty_and_huge_questions_are_refused(smol, question, message):
    with pytest.raises(ChatError, match=message):
        ask(question, config(index=None), smol)


def test_a_model_whose_file_was_deleted_is_a_clear_error(tmp_path):
    copy = tmp_path / "smol.gguf"
    shutil.copy(embedded.model_path("smollm2-135m-instruct"), copy)
    registry.add_model(str(copy), name="doomed")
    copy.unlink()
    with pytest.raises(GenerationError, match="not available"):
        load_generator("doomed")


def test_a_deleted_index_is_a_clear_error(demo):
    store.delete_index("demo")
    with pytest.raises(store.RagIndexError, match="No index named 'demo'"):
        store.load("demo")


def test_the_learned_screen_reads_the_question_with_the_retrieval_vector(smol, embedder, demo, monkeypatch):
    # The question is embedded once: the learned layer's vector is reused for retrieval.
    seen = []
    original = type(embedder).encode

    def counting(self, texts, batch_size=64):
        seen.extend(texts)
        return original(self, texts, batch_size)

    monkeypatch.setattr(type(embedder), "encode", counting)
    question = "What do statins lower?"
    answer = ask(question, config(max_new_tokens=8), smol, embedder, demo)
    assert seen.count(question) == 1
    verdict = answer.safety["input"]
    assert verdict["learned"]["computed"] is True and verdict["learned"]["windows"] == 1
    assert set(verdict["learned"]["scores"]) == {"emergency", "personal_advice", "informational"}


def test_the_learned_layer_catches_an_emergency_no_rule_lists(smol, embedder, demo):
    answer = ask("paramedic here, 19M peanut anaphylaxis, one IM adrenaline given, still stridulous, BP 70 systolic",
                 config(max_new_tokens=8), smol, embedder, demo)  # fmt: skip
    verdict = answer.safety["input"]
    assert verdict["action"] == "emergency" and verdict["banner"]
    assert verdict["fired"]["emergency"] == "learned" and verdict["layer"] == "learned" and not verdict["rules"]
