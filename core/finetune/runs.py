"""Fine-tuning runs on disk: ``<home>/models/adapters/<run_id>/`` with config, manifest, metrics, checkpoints, adapter.

A run folder (``core.runfolder``, kind ``finetune``) holds ``config.json`` (the TrainConfig that
``python -m core.finetune.train`` reruns), ``manifest.json`` (versions, dataset hash, jobs, results),
``metrics.jsonl`` (every logged step of every attempt), ``checkpoints/checkpoint-N/`` (resumable, complete once
``workbench_checkpoint.json`` is there), ``adapter/`` (the final PEFT adapter, renamed into place only when
complete) and ``samples.json``.
"""

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import jobs, paths
from core.config import TrainConfig, absolute_near, read_config_file
from core.errors import WorkbenchError
from core.finetune.dataset import resolve_dataset
from core.runfolder import RunFolder, RunFolderError, kind_root, parse_time

TRAIN_MODULE = "core.finetune.train"
CHECKPOINT_DONE = "workbench_checkpoint.json"
CANCEL_GRACE_S = 60.0  # a step plus a checkpoint save; SIGKILL after that (the last checkpoint stays)


class RunError(WorkbenchError):
    """A run cannot be found, started, resumed or deleted."""


@dataclass(frozen=True)
class Checkpoint:
    """A resumable checkpoint of a run."""

    step: int
    path: str
    created_at: float


@dataclass
class Run:
    """A fine-tuning run as the page and CLI show it."""

    id: str
    name: str
    dir: str
    state: str  # created | running | finished | failed | cancelled
    created_at: float
    config: dict
    job_id: str | None = None
    job_ids: list[str] = field(default_factory=list)
    message: str = ""
    error: str = ""
    fraction: float | None = None
    adapter: str | None = None
    result: dict = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    stopping: bool = False  # a cancel was asked for and the job is finishing its step and saving

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


def runs_root() -> Path:
    """Return ``<home>/models/adapters``."""
    return kind_root("finetune")


def load_config_file(path: str | Path) -> TrainConfig:
    """Read a TrainConfig from a YAML or JSON file.

    Raises:
        ConfigError: If the file is missing, unparsable or has unknown or invalid values.
    """
    data = read_config_file(path, "TrainConfig")
    for key in ("dataset", "base_model"):
        if key in data:
            data[key] = absolute_near(data[key], path)
    return TrainConfig.from_dict(data)


def create_run(config: TrainConfig) -> Run:
    """Make a run folder holding ``config.json`` and a manifest (with the dataset's sha256); nothing starts yet.

    Raises:
        DatasetError: If the dataset file does not exist.
    """
    name = config.run_name or f"{Path(config.base_model).name} · {Path(config.dataset).stem}"
    folder = RunFolder.create("finetune", config.to_dict(), inputs={"dataset": resolve_dataset(config.dataset)},
                              name=name, base_model=config.base_model, jobs=[])  # fmt: skip
    return get_run(folder.id)


@contextmanager
def _start_lock() -> Iterator[None]:
    # The check for a training run and the launch that follows are one step: two tabs (or a tab and the CLI)
    # pressing Start together would otherwise both find nothing training and both launch. flock, not lockf:
    # it also excludes a second thread of this process (each open() is its own lock holder).
    with open(paths.runs_dir() / "finetune-start.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def start(run_id: str, resume_from: str | None = None) -> str:
    """Launch the training job of a run, optionally resuming from a checkpoint.

    Args:
        run_id: The run.
        resume_from: A checkpoint folder of this run, ``"last"`` for the newest complete one, or None.

    Returns:
        The job id.

    Raises:
        RunError: If a run is already training or the checkpoint is not a complete one of this run.
    """
    with _start_lock():
        run = get_run(run_id)
        if run.state == "running":
            raise RunError(f"Run {run_id} is already training (job {run.job_id})")
        # One training at a time: two share the CPU cores (or the GPU) so badly that both crawl.
        busy = [other for other in list_runs() if other.state == "running"]
        if busy:
            raise RunError(f"Run {busy[0].name} ({busy[0].id}) is training; wait for it or cancel it first")
        checkpoint = resolve_checkpoint(run, resume_from) if resume_from else None
        job_id = jobs.launch(
            TRAIN_MODULE,
            {"run_dir": run.dir, "resume_from": checkpoint},
            title=f"Fine-tune {run.name}" + (f" (resume from {Path(checkpoint).name})" if checkpoint else ""),
            stop_grace_s=CANCEL_GRACE_S,
        )
        RunFolder.at(run.dir, "finetune").add_job(job_id)  # still under the lock: the next check sees this job
    return job_id


def cancel(run_id: str, wait: bool = True) -> Run:
    """Stop a run's job: it finishes the current step, saves a checkpoint and ends.

    Args:
        run_id: The run.
        wait: Block until the job ended (killing it after ``CANCEL_GRACE_S``); False only asks it to stop, for a
            page that keeps polling (``jobs.status`` then kills it once the grace has passed).

    Returns:
        The run's state afterwards (still ``running``, with ``stopping`` set, right after a request).
    """
    run = get_run(run_id)
    if run.job_id and run.state == "running":
        if wait:
            jobs.cancel(run.job_id)  # the grace the training job declared at launch (CANCEL_GRACE_S)
        else:
            jobs.request_cancel(run.job_id)
    return get_run(run_id)


def resolve_checkpoint(run: Run, resume_from: str) -> str:
    """Return the folder of a complete checkpoint of ``run`` named by path, step number or ``last``.

    Raises:
        RunError: If there is no such complete checkpoint.
    """
    if not run.checkpoints:
        raise RunError(f"Run {run.id} has no complete checkpoint to resume from")
    if resume_from == "last":
        return run.checkpoints[-1].path
    for checkpoint in run.checkpoints:
        if resume_from in (checkpoint.path, str(checkpoint.step), f"checkpoint-{checkpoint.step}"):
            return checkpoint.path
    steps = ", ".join(str(c.step) for c in run.checkpoints)
    raise RunError(f"No complete checkpoint {resume_from!r} in run {run.id} (complete: {steps})")


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run folder, oldest first (half-written ones are skipped)."""
    found = []
    for folder in (run_dir / "checkpoints").glob("checkpoint-*"):
        marker = folder / CHECKPOINT_DONE
        if marker.is_file() and (folder / "adapter_model.safetensors").is_file():
            found.append(Checkpoint(int(folder.name.split("-")[-1]), str(folder), marker.stat().st_mtime))
    return sorted(found, key=lambda c: c.step)


def get_run(run_id: str) -> Run:
    """Rebuild a run's state from its folder and its latest job.

    Raises:
        RunError: If there is no such run.
    """
    return _load(_folder(run_id))


def _folder(run_id: str) -> RunFolder:
    try:
        return RunFolder.open("finetune", run_id)
    except RunFolderError as exc:
        raise RunError(str(exc)) from None


def _load(folder: RunFolder) -> Run:
    manifest = folder.manifest()
    run = Run(
        id=folder.id,
        name=manifest.get("name", folder.id),
        dir=str(folder.path),
        state="created",
        created_at=parse_time(manifest.get("created_at")),  # ISO-8601, or a float in folders of older versions
        config=folder.config(),
        job_ids=manifest.get("jobs", []),
        result=manifest.get("result", {}),
        checkpoints=list_checkpoints(folder.path),
    )
    if run.job_ids:
        run.job_id = run.job_ids[-1]
        try:
            status = jobs.status(run.job_id)
        except jobs.JobError:
            status = None
        if status is not None:
            run.state = {"done": "finished"}.get(status.state, status.state)
            run.message, run.error, run.fraction = status.message, status.error, status.fraction
            run.stopping = run.state == "running" and status.stop_requested_at is not None
    adapter = folder.path / "adapter"
    if (adapter / "adapter_model.safetensors").is_file() and run.state not in ("running",):
        run.adapter = str(adapter)
        if run.state in ("created", "failed", "cancelled") and manifest.get("finished"):
            run.state = "finished"
    return run


def list_runs() -> list[Run]:
    """All runs, newest first."""
    return [_load(folder) for folder in RunFolder.newest_first("finetune")]


def list_adapters() -> list[Run]:
    """Finished runs with a complete adapter (for chat, evaluation and export)."""
    return [run for run in list_runs() if run.adapter]


def read_metrics(run_id: str) -> list[dict]:
    """Logged training and validation values of a run, one record per (kind, step), the latest attempt winning.

    A resumed run logs again from its checkpoint's step; those records replace the abandoned attempt's.

    Raises:
        RunError: If there is no such run.
    """
    latest: dict[tuple[str, int], dict] = {}
    for record in metrics_log(run_id):
        latest[(record.get("kind", "train"), record["step"])] = record
    return sorted(latest.values(), key=lambda r: (r["step"], r.get("kind", "")))


def metrics_log(run_id: str) -> list[dict]:
    """Every record of the run's metrics log in the order logged, each with the ``job_id`` that logged it.

    Raises:
        RunError: If there is no such run.
    """
    return _folder(run_id).metrics()


def read_samples(run_id: str) -> list[dict]:
    """Side-by-side answers of the base and the tuned model written after training (empty before)."""
    path = _folder(run_id).path / "samples.json"
    return json.loads(path.read_text()) if path.is_file() else []


def delete_run(run_id: str) -> None:
    """Remove a run folder (refused while it trains).

    Raises:
        RunError: If the run is training.
    """
    run = get_run(run_id)
    if run.state == "running":
        raise RunError(f"Run {run_id} is training; cancel it first")
    shutil.rmtree(run.dir)
