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


def test_request_cancel_returns_at_once_and_polling_kills_a_child_after_its_grace(tmp_path):
    job_id = jobs.launch(CHILD, {"mode": "ignore_term", "steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)},
                         stop_grace_s=1.0)  # fmt: skip
    wait_until(lambda: jobs.status(job_id).fraction)
    asked = time.monotonic()
    jobs.request_cancel(job_id)
    assert time.monotonic() - asked < 0.5  # a page's script thread is never blocked
    stopping = jobs.status(job_id)
    assert stopping.state == "running" and stopping.stop_requested_at and "Stopping" in stopping.message
    jobs.request_cancel(job_id)  # asking again neither blocks nor restarts the grace period
    assert pid_alive(stopping.pid)
    status = wait_finished(job_id, timeout_s=10)  # nothing but status() polls, as the pages do
    waited = time.monotonic() - asked
    assert status.state == "cancelled" and "killed after 1 s" in status.message
    assert 1.0 <= waited < 5 and not pid_alive(status.pid)
    assert jobs.status(job_id).state == "cancelled"  # and stays so when read back


def test_blocking_cancel_uses_the_grace_the_job_declared(tmp_path):
    job_id = jobs.launch(CHILD, {"mode": "ignore_term", "steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)},
                         stop_grace_s=0.5)  # fmt: skip
    assert json.loads((paths.jobs_dir() / job_id / "job.json").read_text())["stop_grace_s"] == 0.5
    wait_until(lambda: jobs.status(job_id).fraction)
    started = time.monotonic()
    status = jobs.cancel(job_id)  # the CLI's `workbench jobs cancel`: no grace given
    assert status.state == "cancelled" and not pid_alive(status.pid)
    assert time.monotonic() - started < 3  # its own 0.5 s, not a fixed default


def test_cli_cancel_returns_once_the_child_ended_though_another_process_must_reap_it(tmp_path):
    # We launched the job, so until we poll it the ended child stays a zombie the CLI process cannot reap.
    job_id = jobs.launch(CHILD, {"steps": 1000, "sleep_s": 0.05, "out_dir": str(tmp_path)}, stop_grace_s=30)
    wait_until(lambda: jobs.status(job_id).fraction)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "core.cli", "jobs", "cancel", job_id, "--json"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "cancelled" and time.monotonic() - started < 10


def test_a_final_event_written_between_the_two_reads_is_not_a_failure(tmp_path, monkeypatch):
    job_id = jobs.launch(CHILD, {"steps": 1, "out_dir": str(tmp_path)})
    wait_finished(job_id)
    progress = paths.jobs_dir() / job_id / "progress.jsonl"
    lines = progress.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "done"
    progress.write_text("".join(lines[:-1]))  # back to the moment before the child wrote its last event
    real_alive = jobs._alive

    def child_finishes_now(meta, job_dir=None):
        # The child appends `done` and exits just as the poller looks at its process.
        with open(progress, "a") as handle:
            handle.write(lines[-1])
        return real_alive(meta, job_dir)

    monkeypatch.setattr(jobs, "_alive", child_finishes_now)
    status = jobs.status(job_id)
    assert status.state == "done" and status.result == {"steps": 1}, status.error


def test_job_json_exists_before_the_child_and_a_starting_job_reads_as_running(tmp_path, monkeypatch):
    seen = []
    real_popen = subprocess.Popen

    def look_then_start(*args, **kwargs):
        seen.extend(jobs.list_jobs())  # what a page polling right now would show
        return real_popen(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(jobs.subprocess, "Popen", look_then_start)
        job_id = jobs.launch(CHILD, {"steps": 1, "out_dir": str(tmp_path)}, title="early")
    (starting,) = seen
    assert (starting.id, starting.state, starting.pid, starting.message) == (job_id, "running", None, "Starting")
    assert starting.title == "early" and not starting.finished
    meta = json.loads((paths.jobs_dir() / job_id / "job.json").read_text())
    assert meta["state"] == "started" and meta["pid"] > 0 and meta["proc_start"]
    assert wait_finished(job_id).state == "done"


def test_a_job_that_cannot_be_started_is_listed_as_failed_with_the_reason(tmp_path, monkeypatch):
    with monkeypatch.context() as patch, pytest.raises(jobs.JobError, match="Could not start job"):
        patch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
        jobs.launch(CHILD, {"steps": 1, "out_dir": str(tmp_path)}, title="doomed")
    (status,) = jobs.list_jobs()
    assert status.state == "failed" and status.title == "doomed" and status.pid is None
    assert "Could not start job" in status.error and "no-such-python" in status.error
    assert status.ended_at is not None


def test_a_launcher_that_dies_while_starting_leaves_a_failed_job_not_a_bare_folder(tmp_path):
    # The launching process dies between writing job.json and starting the child (a crash, a kill -9).
    code = (
        "import os, subprocess; from core import jobs; "
        "subprocess.Popen = lambda *args, **kwargs: os._exit(9); "
        f"jobs.launch({CHILD!r}, {{'steps': 1, 'out_dir': {str(tmp_path)!r}}})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)})  # fmt: skip
    assert done.returncode == 9, done.stderr
    (status,) = jobs.list_jobs()
    assert status.state == "failed" and "ended before the job started" in status.error
