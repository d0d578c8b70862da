"""Evaluation runs as the Evaluate page and ``workbench eval`` see them.

Start (a job), list (SQLite), show, compare and delete. A run's folder is the record; SQLite lists it and
carries the headline figures for the list.
"""

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import db, jobs
from core.config import EvalConfig, absolute_near, read_config_file
from core.errors import WorkbenchError
from core.fileio import read_json
from core.runfolder import RunFolder, RunFolderError, now_iso


class EvalRunError(WorkbenchError):
    """An evaluation run cannot be found, started or deleted."""


@dataclass
class EvalRun:
    """One evaluation run as listed."""

    id: str
    name: str
    created_at: str
    status: str  # running | complete | partial | failed | interrupted
    eval_set: str
    systems: list[str]
    n_questions: int
    summary: dict = field(default_factory=dict)  # system → headline figures
    job_id: str | None = None
    fraction: float | None = None
    message: str = ""

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def record(folder: RunFolder, status: str, cfg: EvalConfig, n_questions: int, report: dict | None = None) -> None:
    """Insert or update the run's row in SQLite."""
    summary = {}
    for name, s in (report or {}).get("systems", {}).items():
        m = s["metrics"]
        summary[name] = {"n_scored": s["n_scored"], "n_rows": s["n_rows"], "exact_match": m.get("exact_match"),
                         "f1": m.get("f1"), "bleu": m.get("bleu"), "rougeL": m.get("rougeL")}  # fmt: skip
    systems = json.dumps([s.label for s in cfg.system_configs()])
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO eval_runs (id, name, created_at, updated_at, status, eval_set, systems, n_questions, summary)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at,"
            " status = excluded.status, n_questions = excluded.n_questions, summary = excluded.summary",
            (folder.id, run_name(cfg), now_iso(), now_iso(), status, cfg.eval_set, systems, n_questions,
             json.dumps(summary)),
        )  # fmt: skip


def run_name(cfg: EvalConfig) -> str:
    """The run's label: its name, or the eval set's file name and the systems."""
    if cfg.name:
        return cfg.name
    return f"{cfg.eval_set.rsplit('/', 1)[-1]}: " + " vs ".join(s.label for s in cfg.system_configs())


def create(cfg: EvalConfig) -> RunFolder:
    """Make the run folder of an evaluation (not started) and list it.

    Raises:
        EvalSetError: If the eval set has no usable question (checked now, before any model loads).
    """
    from core.evaluate.run import resolve_path
    from core.evaluate.sets import load_eval_set

    eval_set = load_eval_set(resolve_path(cfg.eval_set))
    folder = RunFolder.create("eval", cfg.to_dict(), inputs={"eval_set": resolve_path(cfg.eval_set)},
                              name=run_name(cfg))  # fmt: skip
    record(folder, "created", cfg, len(eval_set.select(cfg.tags, cfg.limit)))
    return folder


def start(cfg: EvalConfig) -> EvalRun:
    """Create a run and start it as a background job (the Evaluate page).

    Returns:
        The run, running.
    """
    folder = create(cfg)
    job_id = jobs.launch("core.evaluate.run", {"run_dir": str(folder.path)}, title=f"Evaluate: {run_name(cfg)}",
                         stop_grace_s=15.0)  # fmt: skip
    folder.add_job(job_id)
    return get_run(folder.id)


def _row_run(row) -> EvalRun:
    return EvalRun(id=row["id"], name=row["name"], created_at=row["created_at"], status=row["status"],
                   eval_set=row["eval_set"], systems=json.loads(row["systems"]), n_questions=row["n_questions"],
                   summary=json.loads(row["summary"]))  # fmt: skip


def _live(run: EvalRun) -> EvalRun:
    """Fill in the job's progress; a run whose job ended without a report reads as interrupted."""
    try:
        manifest = RunFolder.open("eval", run.id).manifest()
    except RunFolderError:
        return run
    job_ids = manifest.get("jobs") or []
    if not job_ids and run.status == "running" and manifest.get("runner_pid"):
        # Run in a CLI process (no job): interrupted when that process is gone (killed, machine restarted).
        if not jobs.same_process(manifest["runner_pid"], manifest.get("runner_start")):
            run.status = "interrupted"
    if job_ids:
        run.job_id = job_ids[-1]
        try:
            status = jobs.status(run.job_id)
        except jobs.JobError:
            status = None
        if status is not None:
            run.fraction, run.message = status.fraction, status.message
            if run.status in ("running", "created") and status.finished:
                run.status = "interrupted" if status.state != "done" else run.status
    return run


def list_runs(limit: int = 100) -> list[EvalRun]:
    """Evaluation runs, newest first (rows whose folder was removed by hand are dropped from the list)."""
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM eval_runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for row in rows:
        try:
            RunFolder.open("eval", row["id"])
        except RunFolderError:
            continue
        out.append(_live(_row_run(row)))
    return out


def get_run(run_id: str) -> EvalRun:
    """One run.

    Raises:
        EvalRunError: If there is no such run.
    """
    try:
        RunFolder.open("eval", run_id)
    except RunFolderError as exc:
        raise EvalRunError(str(exc)) from None
    with db.connect() as conn:
        row = conn.execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise EvalRunError(f"No evaluation run with id {run_id}")
    return _live(_row_run(row))


def load_report(run_id: str) -> dict:
    """A run's report: ``report.json`` when written, else rebuilt from its rows (an interrupted or running run).

    Raises:
        EvalRunError: If there is no such run.
    """
    from core.evaluate.report import build_report
    from core.evaluate.run import read_rows

    run = get_run(run_id)
    folder = RunFolder.open("eval", run_id)
    path = folder.path / "report.json"
    if path.exists() and run.status not in ("running", "created"):
        return read_json(path)
    status = "running" if run.status in ("running", "created") else "partial"
    report = build_report(folder.config(), read_rows(folder), run.n_questions, status, {"run_id": run_id})
    report["status"] = run.status if run.status != "created" else "running"
    return report


def read_rows(run_id: str) -> list[dict]:
    """Every stored row of a run (for the drill-down and CSV export)."""
    from core.evaluate.run import read_rows as rows_of

    get_run(run_id)
    return rows_of(RunFolder.open("eval", run_id))


def cancel(run_id: str) -> EvalRun:
    """Ask a running evaluation to stop; it writes a partial report.

    Raises:
        EvalRunError: If the run has no job.
    """
    run = get_run(run_id)
    if run.job_id is None:
        raise EvalRunError(f"Evaluation {run_id} is not running as a job")
    jobs.request_cancel(run.job_id)
    return get_run(run_id)


def delete(run_id: str) -> None:
    """Delete a finished run's folder and its row.

    Raises:
        EvalRunError: If it is still running.
    """
    run = get_run(run_id)
    if run.status == "running":
        raise EvalRunError(f"Evaluation {run_id} is still running; cancel it first")
    folder = RunFolder.open("eval", run_id)
    with db.connect() as conn:
        conn.execute("DELETE FROM eval_runs WHERE id = ?", (run_id,))
    shutil.rmtree(folder.path)


def wait(run_id: str, timeout_s: float = 3600.0, poll_s: float = 0.5) -> EvalRun:
    """Wait for a run's job to end (tests, scripts).

    Returns:
        The run as it ended.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = get_run(run_id)
        if run.status not in ("running", "created"):
            return run
        time.sleep(poll_s)
    return get_run(run_id)


def load_config_file(path: str | Path) -> EvalConfig:
    """Read an EvalConfig from a YAML or JSON file (the page writes the same file as ``config.json``).

    Relative paths (the eval set, adapters, safety sets) that exist next to the config file or in the current folder
    are made absolute; others stay relative to the repository (the shipped demo files).

    Raises:
        ConfigError: If the file is missing, unparsable or has unknown or invalid values.
    """
    data = read_config_file(path, "EvalConfig")

    def absolute(value):
        return absolute_near(value, path)

    data["eval_set"] = absolute(data.get("eval_set", EvalConfig().eval_set))
    if isinstance(data.get("safety_sets"), list):
        data["safety_sets"] = [absolute(v) for v in data["safety_sets"]]
    if isinstance(data.get("systems"), list):
        data["systems"] = [{**s, "adapter": absolute(s["adapter"])} if isinstance(s, dict) and s.get("adapter")
                           else s for s in data["systems"]]  # fmt: skip
    return EvalConfig.from_dict(data)


def _system_rows(ref: str) -> tuple[str, str, list[dict], int]:
    """``RUN`` or ``RUN:SYSTEM`` → (run id, system, its rows, its top_k); the run's baseline when no system."""
    run_id, _, system = ref.partition(":")
    folder_rows = read_rows(run_id)
    cfg = EvalConfig.from_dict(RunFolder.open("eval", run_id).config())
    systems = {s.label: s for s in cfg.system_configs()}
    system = system or cfg.system_configs()[0].label
    if system not in systems:
        raise EvalRunError(f"Run {run_id} has no system {system!r}; it has {', '.join(systems)}")
    return run_id, system, [r for r in folder_rows if r["system"] == system], systems[system].top_k


def compare_refs(refs: list[str], resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Paired comparisons between systems, within a run or across runs on the same questions.

    Args:
        refs: One run id (its baseline against each other system), or two ``RUN[:SYSTEM]`` references.
        resamples: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Resampling seed.

    Returns:
        One comparison per pair (``a``, ``b``, ``n``, ``metrics``, ``mcnemar_exact_match``, ``warnings``).

    Raises:
        EvalRunError: For unknown runs or systems, or more than two references.
    """
    from core.evaluate.report import compare

    if len(refs) == 1 and ":" not in refs[0]:
        cfg = EvalConfig.from_dict(RunFolder.open("eval", get_run(refs[0]).id).config())
        labels = [s.label for s in cfg.system_configs()]
        if len(labels) < 2:
            raise EvalRunError(f"Run {refs[0]} has one system; name a second run to compare with")
        refs = [f"{refs[0]}:{labels[0]}"] + [f"{refs[0]}:{label}" for label in labels[1:]]
        pairs = [(refs[0], r) for r in refs[1:]]
    elif len(refs) == 2:
        pairs = [(refs[0], refs[1])]
    else:
        raise EvalRunError("Compare one run (its systems) or two RUN[:SYSTEM] references")
    out = []
    for ref_a, ref_b in pairs:
        run_a, sys_a, rows_a, k_a = _system_rows(ref_a)
        run_b, sys_b, rows_b, k_b = _system_rows(ref_b)
        result = compare(rows_a, rows_b, k_a, k_b, resamples, confidence, seed)
        name_a = sys_a if run_a == run_b else f"{run_a}:{sys_a}"
        name_b = sys_b if run_a == run_b else f"{run_b}:{sys_b}"
        out.append({"a": name_a, "b": name_b, **result})
    return out
