"""Where the workbench keeps its files: one root (WORKBENCH_HOME) resolved on use, never at import."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Return the workbench root: ``$WORKBENCH_HOME`` or the repository folder.

    Returns:
        The root folder (created if missing).
    """
    root = Path(os.environ.get("WORKBENCH_HOME") or REPO_ROOT).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Return ``<home>/data`` (user data, uploads, datasets)."""
    return _sub("data")


def uploads_dir() -> Path:
    """Return ``<home>/data/uploads`` (gitignored: never commit what users upload)."""
    path = data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def indices_dir() -> Path:
    """Return ``<home>/indices`` (one folder per RAG index)."""
    return _sub("indices")


def models_dir() -> Path:
    """Return ``<home>/models`` (adapters, merged weights, exports)."""
    return _sub("models")


def runs_dir() -> Path:
    """Return ``<home>/runs`` (job folders with config, progress and logs)."""
    return _sub("runs")


def jobs_dir() -> Path:
    """Return ``<home>/runs/jobs``."""
    path = runs_dir() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    """Return the SQLite database file of this workbench home."""
    return home() / "workbench.db"


def embedded_dir() -> Path:
    """Return where the embedded default models are prepared.

    ``$WORKBENCH_EMBEDDED_DIR`` overrides it, so that tests with a throwaway home reuse the models that
    ``make`` prepared once instead of importing Gemma again (about a minute).

    Returns:
        The folder (created if missing).
    """
    override = os.environ.get("WORKBENCH_EMBEDDED_DIR")
    path = Path(override).expanduser().resolve() if override else models_dir() / "embedded"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shipped_data_dir() -> Path:
    """Return the repository's ``data/`` folder: the demo corpus and eval sets that ship with the code."""
    return REPO_ROOT / "data"
