"""Each page's render() driven through AppTest on the real registry, embedded models and job runner."""

import json
import time

from streamlit.testing.v1 import AppTest

from components.widgets import escape_md
from core import jobs, paths
from core.models import embedded, registry


def _models_app():
    from components.models_page import ModelsPage

    ModelsPage().render()


def _jobs_app():
    from components.jobs_page import JobsPage

    JobsPage().render()


def _text(at):
    return "\n".join(str(m.value) for m in [*at.markdown, *at.caption])


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_models_page_shows_every_embedded_model_ready():
    at = AppTest.from_function(_models_app, default_timeout=30).run()
    assert not at.exception
    text = _text(at)
    assert "4 of 4 models ready" in text
    for spec in embedded.SPECS:
        assert f"**{escape_md(spec.name)}** :green-badge[ready]" in text


def test_models_page_add_bad_path_shows_error_and_stores_nothing(tmp_path):
    at = AppTest.from_function(_models_app, default_timeout=30).run()
    at.text_input[0].input(str(tmp_path / "missing.gguf"))
    _button(at, "Add model").click().run()
    assert "does not exist" in at.error[0].value
    assert len(registry.list_models()) == len(embedded.SPECS)


def test_models_page_add_check_and_remove_a_model():
    at = AppTest.from_function(_models_app, default_timeout=30).run()
    at.text_input[0].input(str(embedded.model_path("smollm2-135m-instruct")))
    at.text_input[1].input("my-chat-model")
    _button(at, "Add model").click().run()
    assert "Added my\\-chat\\-model" in at.success[0].value  # names are shown literally (escaped Markdown)
    at.run()
    assert "**my\\-chat\\-model** :green-badge[ready]" in _text(at)
    at.button(key="check-my-chat-model").click().run()
    assert "my\\-chat\\-model: ready" in at.success[0].value
    at.button(key="remove-my-chat-model").click().run()
    assert "Removed my\\-chat\\-model" in at.success[0].value
    assert "my-chat-model" not in [e.name for e in registry.list_models()]


def test_models_page_offers_preparation_when_embedded_models_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_EMBEDDED_DIR", str(tmp_path / "empty"))
    at = AppTest.from_function(_models_app, default_timeout=30).run()
    assert "not prepared yet" in at.info[0].value
    assert _button(at, "Prepare embedded models")
    assert ":orange-badge[not prepared]" in _text(at)


def test_jobs_page_empty_then_lists_a_finished_job(tmp_path):
    at = AppTest.from_function(_jobs_app, default_timeout=30).run()
    assert "No jobs yet" in at.info[0].value
    job_id = jobs.launch("tests.core.job_child", {"steps": 2, "out_dir": str(tmp_path)}, title="Demo count")
    deadline = time.time() + 30
    while not jobs.status(job_id).finished and time.time() < deadline:
        time.sleep(0.05)
    at.run()
    text = _text(at)
    assert "**Demo count** :green-badge[done]" in text
    assert "result.txt" in text


def test_a_job_title_shows_literally(tmp_path):
    title = "Fine-tune ![x](http://example.invalid/x.png) **run** <b>"
    job_id = jobs.launch("tests.core.job_child", {"steps": 1, "out_dir": str(tmp_path)}, title=title)
    _wait_finished(job_id)
    at = AppTest.from_function(_jobs_app, default_timeout=30).run()
    assert f"**{escape_md(title)}**" in _text(at)


def _wait_finished(job_id, timeout_s=30):
    deadline = time.time() + timeout_s
    while not jobs.status(job_id).finished and time.time() < deadline:
        time.sleep(0.05)
    return jobs.status(job_id)


def test_jobs_page_cancels_a_running_job(tmp_path):
    job_id = jobs.launch("tests.core.job_child", {"steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)})
    at = AppTest.from_function(_jobs_app, default_timeout=30).run()
    assert ":blue-badge[running]" in _text(at)
    at.button(key=f"jobs.cancel.{job_id}").click().run()
    assert _wait_finished(job_id).state == "cancelled"
    at.run()
    assert ":gray-badge[cancelled]" in _text(at)


def test_jobs_page_cancel_lets_a_slow_job_finish_its_clean_up_within_its_grace(tmp_path):
    # Longer than the 5 s the page used to give every job, shorter than the grace this kind of job declared.
    config = {"mode": "slow_stop", "cleanup_s": 6.0, "steps": 10_000, "sleep_s": 0.05, "out_dir": str(tmp_path)}
    job_id = jobs.launch("tests.core.job_child", config, title="Slow to stop", stop_grace_s=20.0)
    deadline = time.time() + 30
    while not jobs.status(job_id).fraction and time.time() < deadline:
        time.sleep(0.05)
    at = AppTest.from_function(_jobs_app, default_timeout=30).run()
    clicked = time.monotonic()
    at.button(key=f"jobs.cancel.{job_id}").click().run()
    assert time.monotonic() - clicked < 3  # the click does not wait for the job
    button = at.button(key=f"jobs.cancel.{job_id}")
    assert button.label == "Stopping…" and button.disabled
    assert ":blue-badge[running]" in _text(at)
    assert at.get("progress")[0].proto.text.startswith("Stopping (it gets 20 s to end cleanly")
    status = _wait_finished(job_id)
    assert status.state == "cancelled" and status.message == "Cancelled", status.log_tail
    assert (tmp_path / "cleaned-up").read_text() == "ok" and "cleanup done" in status.log_tail
    job_dir = paths.jobs_dir() / job_id
    last = json.loads((job_dir / "progress.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "cancelled"  # reported by the child itself: in this path nothing else writes it
    assert "killed_at" not in json.loads((job_dir / "cancel.json").read_text())
    at.run()
    assert "**Slow to stop** :gray-badge[cancelled]" in _text(at)
