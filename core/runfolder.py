"""Run folders: the one shape of fine-tuning, evaluation and export runs (config, manifest, metrics, artifacts).

A run of a kind lives in ``<home>/<root of the kind>/<ulid>/`` and holds ``config.json`` (the config that made it),
``manifest.json`` (kind, ``created_at`` as ISO-8601 UTC, tool versions, sha256 of its input files, and what the run
records as it goes), ``metrics.jsonl`` (its only metrics log) and its artifacts. Jobs that do the work keep their
own progress events in ``runs/jobs/<id>/``; metrics are logged here, once.
"""

import fcntl
import platform
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from core import paths
from core.errors import WorkbenchError
from core.fileio import append_jsonl, atomic_write_json, read_json, read_jsonl, sha256_file
from core.ids import new_ulid

KINDS = {"finetune": "fine-tuning", "eval": "evaluation", "export": "export"}  # kind: how messages name it
TOOLS = ("torch", "transformers", "peft", "trl")  # the packages whose version changes what a run produces


class RunFolderError(WorkbenchError):
    """A run folder cannot be found or created."""


def kind_root(kind: str) -> Path:
    """Return the folder holding the runs of ``kind`` (created if missing).

    Raises:
        RunFolderError: If the kind is unknown.
    """
    if kind == "finetune":
        root = paths.models_dir() / "adapters"
    elif kind == "eval":
        root = paths.runs_dir() / "eval"
    elif kind == "export":
        root = paths.models_dir() / "exports"
    else:
        raise RunFolderError(f"Unknown run kind {kind!r}; known: {', '.join(KINDS)}")
    root.mkdir(parents=True, exist_ok=True)
    return root


def now_iso() -> str:
    """The current time as manifests write it: ISO-8601 UTC to the second (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_time(value: float | str | None) -> float:
    """Seconds since the epoch from a manifest time: ISO-8601 (current) or a float (folders of older versions)."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(value).timestamp()


def tool_versions() -> dict[str, str | None]:
    """Versions of Python, the ML packages (None when not installed) and the workbench's git commit.

    Read from package metadata, so nothing heavy is imported.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["workbench"] = _git_commit()
    return versions


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(paths.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # no git (an unpacked release): the package versions still say what ran
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: its config, its manifest (updated atomically) and its metrics log."""

    kind: str
    id: str
    path: Path

    @classmethod
    def create(
        cls, kind: str, config: dict, inputs: dict[str, str | Path] | None = None, **fields: Any
    ) -> "RunFolder":
        """Make a new run folder with ``config.json`` and ``manifest.json``.

        Args:
            kind: ``finetune``, ``eval`` or ``export``.
            config: The run's configuration (``XxxConfig.to_dict()``).
            inputs: Input files by role (``{"dataset": path}``); each is recorded with its size and sha256.
            **fields: More manifest fields (``name``, ``jobs``, ...).

        Returns:
            The run folder.

        Raises:
            RunFolderError: If the kind is unknown.
            OSError: If an input file cannot be read.
        """
        root = kind_root(kind)
        hashed = {role: {"path": str(p), "size_bytes": Path(p).stat().st_size, "sha256": sha256_file(p)}
                  for role, p in (inputs or {}).items()}  # fmt: skip
        run_id = new_ulid()
        folder = cls(kind, run_id, root / run_id)
        folder.path.mkdir(parents=True)
        atomic_write_json(folder.path / "config.json", config)
        manifest = {"id": run_id, "kind": kind, "created_at": now_iso(), "versions": tool_versions(),
                    "inputs": hashed, **fields}  # fmt: skip
        atomic_write_json(folder.path / "manifest.json", manifest)  # last: a folder with a manifest is complete
        return folder

    @classmethod
    def open(cls, kind: str, run_id: str) -> "RunFolder":
        """The existing run ``run_id`` of ``kind``.

        Raises:
            RunFolderError: If the id is not a plain folder name or there is no such run.
        """
        # Ids come from URLs and the CLI: refuse anything that is not a plain folder name.
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise RunFolderError(f"Invalid run id: {run_id!r}")
        folder = cls(kind, run_id, kind_root(kind) / run_id)
        if not (folder.path / "manifest.json").is_file():
            raise RunFolderError(f"No {KINDS.get(kind, kind)} run with id {run_id}")
        return folder

    @classmethod
    def at(cls, path: str | Path, kind: str) -> "RunFolder":
        """The run folder at ``path`` (a job that was handed its run's folder)."""
        path = Path(path).resolve()
        return cls(kind, path.name, path)

    @classmethod
    def newest_first(cls, kind: str) -> list["RunFolder"]:
        """Every complete run of ``kind``, newest first (ULIDs sort by time)."""
        found = [p for p in kind_root(kind).iterdir() if (p / "manifest.json").is_file()]
        return [cls(kind, p.name, p) for p in sorted(found, key=lambda p: p.name, reverse=True)]

    def config(self) -> dict:
        """The run's ``config.json``."""
        return read_json(self.path / "config.json")

    def manifest(self) -> dict:
        """The run's ``manifest.json`` as written (``created_at`` is ISO-8601, or a float in older folders)."""
        return read_json(self.path / "manifest.json")

    def created_at(self) -> float:
        """When the run was created, in seconds since the epoch, whichever format its manifest uses."""
        return parse_time(self.manifest().get("created_at"))

    def update_manifest(self, **fields: Any) -> dict:
        """Merge ``fields`` into the manifest and write it atomically.

        The read-merge-write is serialised by a lock file, so the app (recording a job) and the job (recording
        its result) cannot lose each other's update.

        Returns:
            The manifest as written.
        """
        with self._locked():
            manifest = {**self.manifest(), **fields}
            atomic_write_json(self.path / "manifest.json", manifest)
        return manifest

    def add_job(self, job_id: str) -> dict:
        """Record a job that works on this run (manifest ``jobs``, oldest first; the last one is current).

        Returns:
            The manifest as written.
        """
        with self._locked():
            manifest = self.manifest()
            manifest["jobs"] = [*manifest.get("jobs", []), job_id]
            atomic_write_json(self.path / "manifest.json", manifest)
        return manifest

    def append_metric(self, record: dict) -> None:
        """Append one metrics record (a ``t`` timestamp is added when missing)."""
        append_jsonl(self.path / "metrics.jsonl", {"t": time.time(), **record})

    def metrics(self) -> list[dict]:
        """Every metrics record in the order logged (a torn last line is skipped)."""
        # A metric line damaged in the middle (a disk fault) must not hide a whole run: skip it, with a warning.
        return read_jsonl(self.path / "metrics.jsonl", skip_bad_lines=True)

    @contextmanager
    def _locked(self):
        with open(self.path / ".manifest.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield
