"""Evaluate page through AppTest on the real embedded models: the form, a finished run's report, the drill-down."""

import pytest
from streamlit.testing.v1 import AppTest

from components import state
from core.config import EvalConfig
from core.evaluate import registry
from core.evaluate.run import execute
from tests.core.evaluate.conftest import demo_index, eval_set, write_set  # noqa: F401 - fixtures


def _app():
    from components.evaluate_page import EvaluatePage

    EvaluatePage().render()


def _text(at):
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption, *at.warning, *at.info, *at.error, *at.success])


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_the_form_offers_the_demo_set_two_systems_and_every_setting_with_help():
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key=state.EVAL_SET).value == "data/eval/demo_qa.jsonl"
    assert "165 questions" in _text(at) and "unseen (50)" in _text(at)
    assert at.selectbox(key="eval.sys0.model").value == "gemma3-270m-gguf"
    assert at.selectbox(key="eval.sys1.model").value == "smollm2-135m-instruct"
    assert at.number_input(key="eval.sys0.top_k").help == "Passages retrieved and shown to the model"
    assert "No evaluation runs yet" in _text(at)
    assert not _button(at, "Start evaluation").disabled


def test_an_eval_set_without_usable_rows_is_refused_with_the_line(tmp_path):
    path = write_set(tmp_path / "broken.jsonl", [], ["{oops"])
    at = AppTest.from_function(_app, default_timeout=60)
    at.session_state[state.EVAL_SET] = str(path)
    # An upload lands in the uploads folder the selectbox lists; a path set directly is not offered, so use one.
    from core import paths

    target = paths.uploads_dir() / "eval"
    target.mkdir(parents=True, exist_ok=True)
    (target / "broken.jsonl").write_text(path.read_text())
    at.session_state[state.EVAL_SET] = str(target / "broken.jsonl")
    at.run()
    assert not at.exception
    assert "no usable question (line 1: not valid JSON" in _text(at)
    assert _button(at, "Start evaluation").disabled


@pytest.mark.slow
def test_a_finished_run_shows_scores_comparison_and_the_drill_down(demo_index, eval_set):  # noqa: F811
    cfg = EvalConfig(eval_set=str(eval_set), safety_sets=[], systems=[
        {"name": "gemma", "model": "gemma3-270m-gguf", "top_k": 2, "max_new_tokens": 24},
        {"name": "smol", "model": "smollm2-135m-instruct", "top_k": 2, "max_new_tokens": 24}])  # fmt: skip
    folder = registry.create(cfg)
    execute(folder)
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key=state.EVAL_RUN).value == folder.id
    text = _text(at)
    assert "smol − gemma" in text and "McNemar's exact test on exact match" in text
    assert "Only 3 questions were scored by both systems" in text  # too few questions to separate two systems
    scores = at.dataframe[0].value
    assert list(scores["system"]) == ["gemma", "smol"]
    assert all(s.endswith(" of 3") for s in scores["scored"])  # an empty answer is failed, not scored
    drill = at.selectbox(key=f"{state.EVAL_DRILL}.{folder.id}")
    assert drill.options[0].startswith("q1: Which formula")
    drill.select_index(1).run()
    assert "longer than 7 days · more than seven days" in _text(at)
    at.checkbox(key=f"eval.diff.{folder.id}").check().run()
    assert not at.exception and "of 3 questions" in _text(at)
    _button(at, "Delete run").click().run()
    assert registry.list_runs() == [] and "Deleted evaluation" in _text(at)


@pytest.mark.slow
def test_start_launches_a_job_that_the_page_follows_to_its_report(demo_index, tmp_path):  # noqa: F811
    from core import paths

    uploads = paths.uploads_dir() / "eval"
    uploads.mkdir(parents=True, exist_ok=True)
    write_set(uploads / "one.jsonl", [{"question": "How long must atrial fibrillation last to be persistent?",
                                       "reference": "longer than 7 days"}])  # fmt: skip
    at = AppTest.from_function(_app, default_timeout=60)
    at.session_state[state.EVAL_SET] = str(uploads / "one.jsonl")
    at.run()
    at.number_input(key="eval.sys0.max_new_tokens").set_value(16)
    at.number_input(key="eval.sys1.max_new_tokens").set_value(16)
    _button(at, "Start evaluation").click().run()
    assert not at.exception
    (run,) = registry.list_runs()
    assert "Started evaluation" in _text(at)
    ended = registry.wait(run.id, timeout_s=300)
    assert ended.status == "complete", registry.load_report(run.id)
    at.run()
    assert all(s.endswith(" of 1") for s in at.dataframe[0].value["scored"])
