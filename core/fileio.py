"""Atomic writes: a reader never sees a half-written file, and a crash leaves the previous version."""

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError

logger = logging.getLogger(__name__)


class JsonlError(WorkbenchError, ValueError):
    """A JSONL file has a line that is not JSON before its last line: the file is damaged, not just torn."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    Args:
        path: Destination file.
        data: Bytes to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Serialise ``obj`` as indented UTF-8 JSON and write it atomically.

    Args:
        path: Destination file.
        obj: Any JSON-serialisable value.
    """
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    """Read a UTF-8 JSON file.

    Args:
        path: File to read.

    Returns:
        The decoded value.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line; a single ``write`` of a short line is atomic enough for a log read by pollers.

    Args:
        path: JSONL file (created if missing).
        obj: Value to append.
    """
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def fsync_path(path: Path, tree: bool = False) -> None:
    """Flush a file or a folder (its entries) to disk; with ``tree``, everything beneath a folder too.

    A rename or a manifest swap is only as durable as what it points at: after a power cut the new name may
    survive while the data or the folder entries it names were still in the page cache.

    Args:
        path: A file or a folder.
        tree: For a folder, also flush every file and sub-folder beneath it (files first, the folder last).
    """
    path = Path(path)
    if tree and path.is_dir():
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first
            fsync_path(child)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path, skip_bad_lines: bool = False) -> list[Any]:
    """Read a JSONL file; a torn last line (no newline after it, left by a killed writer) is skipped.

    Any other line that is not JSON means the file is damaged, and that is an error: skipping it would silently
    lose a record (a chunk of an index, an event of a job).

    Args:
        path: JSONL file; a missing file reads as empty.
        skip_bad_lines: Skip damaged lines anywhere, logging a warning for each, instead of raising (for logs that
            are only shown, where one lost event is better than none shown at all).

    Returns:
        The decoded lines.

    Raises:
        JsonlError: If a line other than a torn last line is not valid UTF-8 JSON (unless ``skip_bad_lines``).
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    # After the final newline split() leaves b""; anything else there is a line whose writer never finished it.
    torn = len(lines) - 1 if lines[-1].strip() else None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number - 1 == torn:
                logger.info("%s: skipped a torn last line (a writer was interrupted)", path)
                continue
            reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.msg
            message = f"{path} is damaged: line {number} is not valid JSON ({reason})"
            if not skip_bad_lines:
                raise JsonlError(message) from exc
            logger.warning("%s; line skipped", message)
    return rows


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces (datasets and weights can be larger than memory allows).

    Args:
        path: The file.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
