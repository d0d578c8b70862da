"""Long work as child processes: launch, poll JSONL progress, cancel, and reattach from disk after a restart.

A job is a folder ``runs/jobs/<ulid>/`` holding ``job.json`` (what was started, its stop grace, and the pid once
the child exists), ``config.json`` (the child's only argument), ``progress.jsonl`` (events the child appends),
``log.txt`` (its stdout and stderr) and, once asked, ``cancel.json``. Everything the UI shows is read back from that
folder, so a page refresh or an app restart loses nothing, and the polls that read it also enforce a cancel's grace
period: no caller has to block while a job stops.
"""

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import paths
from core.errors import WorkbenchError
from core.fileio import append_jsonl, atomic_write_json, read_json, read_jsonl
from core.ids import new_ulid

logger = logging.getLogger(__name__)

FINAL_STATES = ("done", "failed", "cancelled")
LOG_TAIL_BYTES = 4000
DEFAULT_STOP_GRACE_S = 10.0


class JobError(WorkbenchError):
    """A job cannot be found, started or cancelled."""


class JobCancelled(Exception):
    """Raised inside a child when the parent asked it to stop (SIGTERM)."""


@dataclass(frozen=True)
class JobStatus:
    """What the UI and CLI show for one job, rebuilt from its folder on every poll."""

    id: str
    module: str
    title: str
    state: str  # running (also while starting or stopping) | done | failed | cancelled
    fraction: float | None
    message: str
    created_at: float
    ended_at: float | None
    elapsed_s: float
    pid: int | None  # None until the child process exists
    dir: str
    error: str = ""
    log_tail: str = ""
    result: dict = field(default_factory=dict)
    artifacts: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)  # per-item results as they come (files of an ingest, ...)
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    stop_requested_at: float | None = None  # when a cancel was asked for (the job may still be stopping)

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self.state in FINAL_STATES


# ---------------------------------------------------------------------------------------------------------------
# Parent side


def launch(module: str, config: dict[str, Any], title: str = "", stop_grace_s: float = DEFAULT_STOP_GRACE_S) -> str:
    """Start ``python -m <module> <job_dir>/config.json`` as a child in its own process group.

    ``job.json`` is written before the child exists (state ``starting``, no pid) and updated atomically with the
    pid once it does: a poller, or a crash, in between sees a job that is starting, never a bare folder.

    Args:
        module: Importable module with a ``__main__`` entry that calls :func:`run_child`.
        config: JSON-serialisable configuration written to ``config.json``.
        title: Human-readable label for the Jobs page.
        stop_grace_s: How long this kind of job gets to stop cleanly after a cancel request (a training job saves a
            checkpoint) before it is killed; recorded in ``job.json`` so every cancel path honours it.

    Returns:
        The job id.

    Raises:
        JobError: If the child process cannot be started (the job then reads as ``failed`` with the reason).
    """
    job_id = new_ulid()
    job_dir = paths.jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    config_path = job_dir / "config.json"
    atomic_write_json(config_path, config)
    argv = [sys.executable, "-m", module, str(config_path)]
    meta = {
        "id": job_id,
        "module": module,
        "title": title or module,
        "argv": argv,
        "state": "starting",
        "pid": None,
        "proc_start": None,
        # While there is no child yet, the job lives as long as the process launching it.
        "launcher_pid": os.getpid(),
        "launcher_start": process_start_ticks(os.getpid()),
        "created_at": time.time(),
        "stop_grace_s": stop_grace_s,
    }
    atomic_write_json(job_dir / "job.json", meta)
    env = dict(os.environ)
    # The child must import `core` even when the workbench is not pip-installed (a plain checkout).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["WORKBENCH_JOB_ID"] = job_id
    with open(job_dir / "log.txt", "ab") as log:
        try:
            # A new session makes the child a process-group leader: cancel can then end it and all its children,
            # and a Streamlit restart (SIGINT to the app's group) does not kill running jobs.
            proc = subprocess.Popen(
                argv,
                cwd=paths.REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            error = f"Could not start job {module}: {exc}"
            atomic_write_json(
                job_dir / "job.json", {**meta, "state": "failed", "error": error, "ended_at": time.time()}
            )
            raise JobError(error) from exc
    atomic_write_json(job_dir / "job.json", {**meta, "state": "started", "pid": proc.pid,
                                             "proc_start": process_start_ticks(proc.pid)})  # fmt: skip
    if (job_dir / "cancel.json").exists():  # asked to stop while it was starting: pass the request on
        _signal_group(proc.pid, signal.SIGTERM)
    logger.info("launched job %s (%s) pid %d", job_id, module, proc.pid)
    return job_id


def status(job_id: str) -> JobStatus:
    """Rebuild a job's status from its folder, and kill a cancelled job whose stop grace has run out.

    Args:
        job_id: The id returned by :func:`launch`.

    Returns:
        The current status. A job still starting shows as ``running``; a child that died without reporting, or one
        that could not be started, shows as ``failed`` with the reason and its log tail.

    Raises:
        JobError: If there is no such job.
    """
    job_dir = _job_dir(job_id)
    meta = read_json(job_dir / "job.json")
    # Liveness first, events second: a child that writes its final event and exits between the two reads must
    # show that event, not "ended without reporting".
    alive = _alive(meta, job_dir)
    if not alive and meta.get("state") == "starting":
        meta = read_json(job_dir / "job.json")  # the launcher may have recorded the child and exited meanwhile
        alive = _alive(meta, job_dir)
    cancel = _stop_overdue(job_dir, meta)
    events = read_jsonl(job_dir / "progress.jsonl", skip_bad_lines=True)
    fraction, message, result, error, ended_at = None, "", {}, "", None
    artifacts, metrics, items = [], [], []
    final = None
    for event in events:
        kind = event.get("type")
        if kind == "progress":
            fraction = event.get("fraction", fraction)
            message = event.get("message", message)
        elif kind == "metric":
            metrics.append(event)
        elif kind == "artifact":
            artifacts.append(event)
        elif kind == "item":
            items.append(event)
        elif kind in FINAL_STATES:
            final = kind
            ended_at = event.get("t")
            result = event.get("result") or {}
            error = event.get("error", "")
            message = event.get("message", message)
    grace = meta.get("stop_grace_s", DEFAULT_STOP_GRACE_S)
    if final is not None:
        state = final
    elif alive:
        state = "running"
        if cancel:
            message = f"Stopping (it gets {grace:g} s to end cleanly before it is killed)"
        elif meta["pid"] is None:
            message = "Starting"
    elif meta.get("state") == "failed":  # the child could not be started at all
        state, error, ended_at = "failed", meta.get("error", "The job could not be started"), meta.get("ended_at")
    elif cancel:
        state, ended_at = "cancelled", cancel.get("killed_at") or cancel["t"]
        message = f"Cancelled (killed after {grace:g} s)" if "killed_at" in cancel else "Cancelled"
    else:
        state, ended_at = "failed", _mtime(job_dir)
        if meta["pid"] is None:
            error = "The process launching this job ended before the job started"
        else:
            exit_file = job_dir / "exit.json"
            code = read_json(exit_file)["code"] if exit_file.exists() else None
            error = "The job process ended without reporting a result" + (f" (exit code {code})" if code else "")
        error += ". Last lines of its log are shown below."
    if state == "done":
        fraction = 1.0
    created = meta["created_at"]
    return JobStatus(
        id=job_id,
        module=meta["module"],
        title=meta.get("title", meta["module"]),
        state=state,
        fraction=fraction,
        message=message,
        created_at=created,
        ended_at=ended_at,
        elapsed_s=(ended_at or time.time()) - created,
        pid=meta["pid"],
        dir=str(job_dir),
        error=error,
        log_tail=_tail(job_dir / "log.txt"),
        result=result,
        artifacts=artifacts,
        metrics=metrics,
        items=items,
        stop_grace_s=grace,
        stop_requested_at=cancel["t"] if cancel else None,
    )


def list_jobs(limit: int = 50) -> list[JobStatus]:
    """Return the newest jobs first, reattaching to running ones from disk.

    Args:
        limit: Most jobs to return.

    Returns:
        Job statuses; folders that are not valid jobs are skipped.
    """
    root = paths.jobs_dir()
    ids = sorted((p.name for p in root.iterdir() if (p / "job.json").exists()), reverse=True)[:limit]
    return [status(job_id) for job_id in ids]


def request_cancel(job_id: str) -> None:
    """Ask a running job to stop (SIGTERM to its process group) and return at once: for a UI that polls.

    The child ends in its own time (a training job finishes its step and saves a checkpoint) and reports
    ``cancelled``. If its process group is still alive once the job's ``stop_grace_s`` has passed since the
    request, the next :func:`status` (the pages poll it) or request kills the group. Asking again does not
    restart the grace period and does not signal the child a second time (that could cut its clean-up short).

    Args:
        job_id: The job to stop.

    Raises:
        JobError: If there is no such job.
    """
    job_dir = _job_dir(job_id)
    meta = read_json(job_dir / "job.json")
    _ask_to_stop(job_dir, meta)
    _stop_overdue(job_dir, meta)


def cancel(job_id: str, grace_s: float | None = None) -> JobStatus:
    """Stop a job and wait: SIGTERM to its process group, then SIGKILL once the grace period is over.

    Args:
        job_id: The job to stop.
        grace_s: Seconds the child gets to finish cleanly (save a checkpoint, remove temp files); default: the
            ``stop_grace_s`` its kind declared at launch.

    Returns:
        The job's status after it stopped (``cancelled``, or its own final state if it finished first).

    Raises:
        JobError: If there is no such job.
    """
    job_dir = _job_dir(job_id)
    meta = read_json(job_dir / "job.json")
    grace_s = meta.get("stop_grace_s", DEFAULT_STOP_GRACE_S) if grace_s is None else grace_s
    if not _ask_to_stop(job_dir, meta):
        return status(job_id)
    deadline = read_json(job_dir / "cancel.json")["t"] + grace_s
    while time.time() < deadline:
        meta = read_json(job_dir / "job.json")  # a job that was still starting gets its pid
        if not _group_alive(meta, job_dir):
            break
        time.sleep(0.05)
    if _group_alive(meta, job_dir):
        _kill_group(job_dir, meta)
        deadline = time.time() + 5
        while time.time() < deadline and _group_alive(meta, job_dir):
            time.sleep(0.05)
    events = read_jsonl(job_dir / "progress.jsonl", skip_bad_lines=True)
    if not any(e.get("type") in FINAL_STATES for e in events):
        append_jsonl(job_dir / "progress.jsonl", {"t": time.time(), "type": "cancelled", "message": "Cancelled"})
    return status(job_id)


def _ask_to_stop(job_dir: Path, meta: dict) -> bool:
    """Record the cancel request and SIGTERM the job's process group once; False when it had already ended."""
    if not _alive(meta, job_dir):
        return False
    cancel_file = job_dir / "cancel.json"
    if cancel_file.exists():  # asked before: the grace runs from the first request
        return True
    atomic_write_json(cancel_file, {"t": time.time()})
    if meta["pid"] is not None:  # a job still starting gets the signal from launch() once its child exists
        _signal_group(meta["pid"], signal.SIGTERM)  # the child leads its own process group (start_new_session)
    return True


def _stop_overdue(job_dir: Path, meta: dict) -> dict | None:
    """Enforce the stop grace of a cancelled job: SIGKILL its group once the grace has passed.

    Returns:
        The cancel request (``cancel.json``), or None when none was made.
    """
    cancel_file = job_dir / "cancel.json"
    if not cancel_file.exists():
        return None
    cancel = read_json(cancel_file)
    # Settled requests are never looked at again: long after the group ended its id may name another group.
    if "settled_at" in cancel or meta["pid"] is None:
        return cancel
    if not _group_alive(meta, job_dir):
        cancel = {**cancel, "settled_at": time.time()}
        atomic_write_json(cancel_file, cancel)
    elif time.time() >= cancel["t"] + meta.get("stop_grace_s", DEFAULT_STOP_GRACE_S):
        cancel = _kill_group(job_dir, meta)
    return cancel


def _kill_group(job_dir: Path, meta: dict) -> dict:
    _signal_group(meta["pid"], signal.SIGKILL)
    logger.warning("job %s did not stop within its grace period: killed", meta["id"])
    cancel_file = job_dir / "cancel.json"
    now = time.time()
    cancel = {
        "t": now,
        **(read_json(cancel_file) if cancel_file.exists() else {}),
        "killed_at": now,
        "settled_at": now,
    }
    atomic_write_json(cancel_file, cancel)
    return cancel


def _job_dir(job_id: str) -> Path:
    # Ids come from URLs and the CLI: refuse anything that is not a plain folder name.
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise JobError(f"Invalid job id: {job_id!r}")
    job_dir = paths.jobs_dir() / job_id
    if not (job_dir / "job.json").exists():
        raise JobError(f"No job with id {job_id}")
    return job_dir


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    return raw[raw.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks (None when there is no such process)."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22 of /proc/<pid>/stat: start time in clock ticks


def same_process(pid: int | None, start_ticks: int | None) -> bool:
    """Whether ``pid`` is still the (non-zombie) process that had this start time."""
    fields = _proc_stat(pid) if pid else None
    return fields is not None and fields[0] != "Z" and (start_ticks is None or int(fields[19]) == start_ticks)


def _alive(meta: dict, job_dir: Path | None = None) -> bool:
    pid = meta["pid"]
    if pid is None:  # no child yet: starting for as long as the launching process lives
        return meta.get("state") == "starting" and same_process(meta.get("launcher_pid"), meta.get("launcher_start"))
    fields = _proc_stat(pid)
    if fields is None:
        return False
    if fields[0] == "Z":  # a zombie: ended, but its parent (maybe us) has not reaped it yet
        code = _exit_code(pid)
        if code is not None and job_dir is not None:
            atomic_write_json(job_dir / "exit.json", {"code": code, "t": time.time()})
        return False
    # A different start time means the pid was reused by an unrelated process after our child ended.
    return meta.get("proc_start") is None or int(fields[19]) == meta["proc_start"]


def _group_alive(meta: dict, job_dir: Path | None = None) -> bool:
    """Whether the job's process group (the child and anything it started) still has a member."""
    if _alive(meta, job_dir):
        return True
    pgid = meta["pid"]  # the child leads its own process group (start_new_session)
    if pgid is None:
        return False
    leader = _proc_stat(pgid)
    if leader is not None and leader[0] != "Z":
        return False  # the pid, and so the group id, now belongs to another process
    if leader is not None:  # a zombie leader another process has yet to reap: it still counts for killpg
        return any(
            (fields := _proc_stat(int(entry.name))) and int(fields[2]) == pgid and fields[0] != "Z"
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit()
        )
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _exit_code(pid: int) -> int | None:
    """Reap our own child if it has ended; None when it is not ours or still running."""
    try:
        waited, raw = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if waited == 0:
        return None
    return os.waitstatus_to_exitcode(raw)


def _tail(path: Path, n_bytes: int = LOG_TAIL_BYTES) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - n_bytes))
        return handle.read().decode("utf-8", errors="replace")


def _mtime(job_dir: Path) -> float:
    return max((p.stat().st_mtime for p in job_dir.iterdir()), default=time.time())


# ---------------------------------------------------------------------------------------------------------------
# Child side


class Reporter:
    """Appends progress events to ``progress.jsonl`` beside the job's config file."""

    def __init__(self, job_dir: Path):
        """Create a reporter writing into ``job_dir``."""
        self.path = Path(job_dir) / "progress.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def event(self, event_type: str, **fields: Any) -> None:
        """Append one event of type ``event_type`` with a timestamp."""
        append_jsonl(self.path, {"t": time.time(), "type": event_type, **fields})

    def progress(self, fraction: float | None, message: str = "", **fields: Any) -> None:
        """Report overall progress in [0, 1] (None when unknown) and what is happening now."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        self.event("progress", fraction=fraction, message=message, **fields)

    def metric(self, step: int, **values: float) -> None:
        """Record numeric values at a step (loss, learning rate, tokens/s) for live charts."""
        self.event("metric", step=step, **values)

    def artifact(self, path: str | Path, kind: str = "file", **fields: Any) -> None:
        """Record a file or folder the job produced."""
        self.event("artifact", path=str(path), kind=kind, **fields)


def _raise_cancelled(signum: int, frame: Any) -> None:
    raise JobCancelled()


def run_child(work: Callable[[dict, Reporter], dict | None]) -> None:
    """Entry point for a job module's ``__main__``: read the config named in argv, run ``work``, report the end.

    The final event is ``done`` (with ``work``'s result), ``cancelled`` (SIGTERM) or ``failed`` (with the
    exception message; the traceback goes to the job log). The process exits 0, 130 or 1 accordingly.

    Args:
        work: ``work(config, reporter)`` does the job and returns a JSON-able result.
    """
    if len(sys.argv) != 2:
        sys.stderr.write(f"usage: python -m {work.__module__} CONFIG.json\n")
        raise SystemExit(2)
    config_path = Path(sys.argv[1]).resolve()
    reporter = Reporter(config_path.parent)
    signal.signal(signal.SIGTERM, _raise_cancelled)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = work(read_json(config_path), reporter)
    except (JobCancelled, KeyboardInterrupt):
        reporter.event("cancelled", message="Cancelled")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - recorded as the job's failure, with the traceback in its log
        traceback.print_exc()
        reporter.event("failed", error=f"{type(exc).__name__}: {exc}", message="Failed")
        raise SystemExit(1) from None
    reporter.event("done", result=result or {}, message="Done")
