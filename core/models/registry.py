"""The model registry: embedded defaults plus models the user added (SQLite), each with role, format and status."""

import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from core import db
from core.models import embedded
from core.models.entry import ModelEntry
from core.models.formats import HUB_ID, ROLES, ModelError, inspect_path

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[\w.@+-]{1,80}$")


def list_models(role: str | None = None) -> list[ModelEntry]:
    """Return the embedded models, then the user's, with a quick status (existence and size, no hashing).

    Args:
        role: Only models with this role.

    Returns:
        The entries.
    """
    entries = embedded.entries()
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM models ORDER BY added_at").fetchall()
    entries += [_quick_status(_row_entry(row)) for row in rows]
    return [e for e in entries if role is None or e.role == role]


def get_model(name: str) -> ModelEntry:
    """Return one entry by name.

    Args:
        name: The model's registry name.

    Returns:
        The entry.

    Raises:
        ModelError: If there is no such model.
    """
    for entry in list_models():
        if entry.name == name:
            return entry
    raise ModelError(f"No model named {name!r} in the registry")


def add_model(source: str, name: str | None = None, role: str | None = None) -> ModelEntry:
    """Register a local model path or a Hugging Face hub id.

    A local path must be a valid model or nothing is stored. A hub id is resolved from the local Hugging Face
    cache only; when it is not there it is registered with status ``offline`` and a plain explanation.

    Args:
        source: A path to a ``.gguf``/``.onnx`` file or a model folder, or a hub id such as
            ``google/medgemma-4b-it``.
        name: Registry name; defaults to the file or repo name.
        role: One of ``chat``, ``finetune_base``, ``embeddings``, ``vision``; guessed from the files when omitted.

    Returns:
        The stored entry.

    Raises:
        ModelError: For a bad name or role, a name already taken, or a local path that is not a usable model.
    """
    source = source.strip()
    if not source:
        raise ModelError("Give a model path or a hub id")
    if role is not None and role not in ROLES:
        raise ModelError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}")
    local = Path(source).expanduser()
    if local.exists():
        inspection = inspect_path(local)
        entry = ModelEntry(
            name=name or local.name,
            role=role or inspection.role,
            format=inspection.format,
            source=source,
            path=inspection.path,
            size_bytes=inspection.size_bytes,
            status="ready",
            detail=inspection.detail,
            embedded=False,
        )
    elif HUB_ID.match(source) and not source.startswith((".", "/", "~")):
        entry = _resolve_hub_id(source, name or source.split("/")[-1], role)
    else:
        raise ModelError(f"Path does not exist: {source} (and it is not a hub id of the form owner/name)")
    if not NAME.match(entry.name):
        raise ModelError(f"Invalid model name {entry.name!r}: use letters, digits and . _ - @ + (at most 80)")
    if any(e.name == entry.name for e in list_models()):
        raise ModelError(f"A model named {entry.name!r} is already registered; choose another name")
    now = _now()
    entry = entry.replace(added_at=now, checked_at=now)
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO models (name, source, path, role, format, size_bytes, status, detail, added_at, checked_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.name, entry.source, entry.path, entry.role, entry.format, entry.size_bytes, entry.status,
             entry.detail, entry.added_at, entry.checked_at),
        )  # fmt: skip
    logger.info("registered model %s (%s, %s)", entry.name, entry.format, entry.status)
    return entry


def remove_model(name: str) -> None:
    """Remove a user-added model from the registry (its files are left alone).

    Args:
        name: The registry name.

    Raises:
        ModelError: If it is an embedded model or not registered.
    """
    if any(e.name == name for e in embedded.entries()):
        raise ModelError(f"{name} is an embedded default model and cannot be removed")
    with db.connect() as conn:
        deleted = conn.execute("DELETE FROM models WHERE name = ?", (name,)).rowcount
    if not deleted:
        raise ModelError(f"No model named {name!r} in the registry")


def check_model(name: str) -> ModelEntry:
    """Re-inspect a model fully (headers, weights complete; hashes for embedded models) and store its status.

    Args:
        name: The registry name.

    Returns:
        The entry with its fresh status.

    Raises:
        ModelError: If there is no such model.
    """
    entry = get_model(name)
    if entry.embedded:
        return embedded.verify(name)
    if entry.format == "hub" or (entry.path is None and HUB_ID.match(entry.source)):
        fresh = _resolve_hub_id(entry.source, entry.name, entry.role)
    else:
        fresh = _inspect_entry(entry)
    with db.connect() as conn:
        conn.execute(
            "UPDATE models SET path = ?, format = ?, size_bytes = ?, status = ?, detail = ?, checked_at = ? "
            "WHERE name = ?",
            (fresh.path, fresh.format, fresh.size_bytes, fresh.status, fresh.detail, _now(), name),
        )
    return get_model(name)


def _inspect_entry(entry: ModelEntry) -> ModelEntry:
    path = Path(entry.path or entry.source)
    if not path.exists():
        return entry.replace(status="missing", detail=f"Path no longer exists: {path}")
    try:
        found = inspect_path(path)
    except ModelError as exc:
        return entry.replace(status="invalid", detail=str(exc))
    return entry.replace(
        status="ready", detail=found.detail, size_bytes=found.size_bytes, format=found.format, path=found.path
    )


def _resolve_hub_id(repo_id: str, name: str, role: str | None) -> ModelEntry:
    # Only the local cache is consulted: the workbench never downloads at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # HF_HUB_CACHE is read at call time so a changed setting (or a test) takes effect without a restart.
        folder = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return ModelEntry(
            name=name,
            role=role or "chat",
            format="hub",
            source=repo_id,
            path=None,
            size_bytes=None,
            status="offline",
            detail=(
                f"{repo_id} is not in the local Hugging Face cache and this workbench never downloads at run time. "
                f"On a machine with hub access run `hf download {repo_id}` (accept the model's licence first), "
                "or add the model's local folder instead."
            ),
            embedded=False,
        )
    try:
        found = inspect_path(folder)
    except ModelError as exc:
        raise ModelError(f"{repo_id} is cached at {folder} but is not usable: {exc}") from exc
    return ModelEntry(name, role or found.role, found.format, repo_id, found.path, found.size_bytes, "ready",
                      found.detail, False)  # fmt: skip


def _quick_status(entry: ModelEntry) -> ModelEntry:
    if entry.status in ("offline", "invalid") or entry.path is None:
        return entry
    path = Path(entry.path)
    if not path.exists():
        return entry.replace(status="missing", detail=f"Path no longer exists: {path}")
    return entry


def _row_entry(row) -> ModelEntry:
    return ModelEntry(
        name=row["name"],
        role=row["role"],
        format=row["format"],
        source=row["source"],
        path=row["path"],
        size_bytes=row["size_bytes"],
        status=row["status"],
        detail=row["detail"],
        embedded=False,
        added_at=row["added_at"],
        checked_at=row["checked_at"],
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
