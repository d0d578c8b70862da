"""Job runner with real child processes: progress, cancel (with grandchildren), crash, exception, reattach."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import jobs, paths

CHILD = "tests.core.job_child"


def wait_until(predicate, timeout_s=30.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def wait_finished(job_id, timeout_s=30.0):
    return wait_until(lambda: (s := jobs.status(job_id)).finished and s, timeout_s)


def pid_alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_progress_metrics_artifacts_and_result(tmp_path):
    job_id = jobs.launch(CHILD, {"steps": 4, "out_dir": str(tmp_path)}, title="count to four")
    status = wait_finished(job_id)
    assert status.state == "done", status.log_tail
    assert status.fraction == 1.0
    assert status.title == "count to four"
    assert [m["loss"] for m in status.metrics] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert status.result == {"steps": 4}
    assert status.artifacts[0]["path"].endswith("result.txt")
    assert "working on step 4" in status.log_tail
    job_dir = paths.jobs_dir() / job_id
    assert json.loads((job_dir / "config.json").read_text())["steps"] == 4


def test_running_job_reports_partial_progress(tmp_path):
    job_id = jobs.launch(CHILD, {"steps": 200, "sleep_s": 0.05, "out_dir": str(tmp_path)})
    status = wait_until(lambda: (s := jobs.status(job_id)).fraction and s)
    assert status.state == "running"
    assert 0 < status.fraction < 1
    jobs.cancel(job_id)


def test_cancel_ends_child_and_grandchildren(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    job_id = jobs.launch(CHILD, {"mode": "spawn", "steps": 1000, "sleep_s": 0.05, "pid_file": str(pid_file),
                                 "out_dir": str(tmp_path)})  # fmt: skip
    wait_until(pid_file.exists)
    grandchild = int(pid_file.read_text())
    assert pid_alive(grandchild)
    status = jobs.cancel(job_id)
    assert status.state == "cancelled"
    assert not pid_alive(status.pid)
    wait_until(lambda: not pid_alive(grandchild), timeout_s=10)
    assert jobs.status(job_id).state == "cancelled"  # stays cancelled when read back


def test_cancel_kills_a_child_that_ignores_sigterm(tmp_path):
    job_id = jobs.launch(CHILD, {"mode": "ignore_term", "steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)})
    wait_until(lambda: jobs.status(job_id).fraction)
    started = time.time()
    status = jobs.cancel(job_id, grace_s=0.5)
    assert status.state == "cancelled"
    assert not pid_alive(status.pid)
    assert time.time() - started < 5


def test_child_that_dies_without_reporting_is_failed_with_log_tail(tmp_path):
    job_id = jobs.launch(CHILD, {"mode": "crash", "steps": 5, "out_dir": str(tmp_path)})
    status = wait_finished(job_id)
    assert status.state == "failed"
    assert "ended without reporting" in status.error
    assert "exit code 3" in status.error
    assert "working on step 2" in status.log_tail


def test_exception_in_child_is_failed_with_message_and_traceback(tmp_path):
    job_id = jobs.launch(CHILD, {"mode": "raise", "steps": 5, "out_dir": str(tmp_path)})
    status = wait_finished(job_id)
    assert status.state == "failed"
    assert status.error == "ValueError: boom at step 2"
    assert "Traceback" in status.log_tail


def test_reattach_from_another_process_after_restart(tmp_path, workbench_home):
    # The launching process exits at once, like a Streamlit server that restarts; we are not the child's parent.
    code = (
        "import json, sys; from core import jobs; "
        f"print(jobs.launch({CHILD!r}, {{'steps': 1000, 'sleep_s': 0.05, 'out_dir': {str(tmp_path)!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)})  # fmt: skip
    job_id = out.stdout.strip()
    assert [s.id for s in jobs.list_jobs()] == [job_id]
    status = wait_until(lambda: (s := jobs.status(job_id)).fraction and s)
    assert status.state == "running"
    assert jobs.cancel(job_id).state == "cancelled"
    assert jobs.list_jobs()[0].state == "cancelled"


def test_finished_jobs_are_listed_newest_first_from_disk(tmp_path):
    first = jobs.launch(CHILD, {"steps": 1, "out_dir": str(tmp_path)})
    wait_finished(first)
    time.sleep(0.01)
    second = jobs.launch(CHILD, {"steps": 1, "out_dir": str(tmp_path)})
    wait_finished(second)
    assert [s.id for s in jobs.list_jobs()] == [second, first]
    assert all(s.state == "done" for s in jobs.list_jobs())


def test_reused_pid_is_not_mistaken_for_the_job(tmp_path):
    job_id = jobs.launch(CHILD, {"steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)})
    wait_until(lambda: jobs.status(job_id).fraction)
    meta_path = paths.jobs_dir() / job_id / "job.json"
    meta = json.loads(meta_path.read_text())
    real_start = meta["proc_start"]
    meta["proc_start"] = real_start + 12345  # as if the pid now belonged to another process
    meta_path.write_text(json.dumps(meta))
    assert jobs.status(job_id).state == "failed"
    meta["proc_start"] = real_start
    meta_path.write_text(json.dumps(meta))
    assert jobs.cancel(job_id).state == "cancelled"


def test_unknown_or_hostile_job_ids_are_refused():
    with pytest.raises(jobs.JobError):
        jobs.status("01NOSUCHJOB")
    with pytest.raises(jobs.JobError):
        jobs.status("../../etc")


def test_torn_progress_line_is_ignored(tmp_path):
    job_id = jobs.launch(CHILD, {"steps": 2, "out_dir": str(tmp_path)})
    wait_finished(job_id)
    with open(paths.jobs_dir() / job_id / "progress.jsonl", "a") as handle:
        handle.write('{"t": 1, "type": "progr')
    assert jobs.status(job_id).state == "done"
