"""Atomic writes: a reader never sees a half-written file, and a crash leaves the previous version."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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


def read_jsonl(path: Path) -> list[Any]:
    """Read a JSONL file, skipping a torn last line left by a writer that was killed mid-write.

    Args:
        path: JSONL file; a missing file reads as empty.

    Returns:
        The decoded lines.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
