"""Saving uploaded files: harmless names within the file system's byte limit, never overwriting one another."""

import os
import re
import unicodedata
from pathlib import Path

MAX_NAME_BYTES = 200  # of a saved upload's name; file systems allow 255 bytes, and " (2)" must still fit


def safe_name(name: str) -> str:
    """Turn an uploaded file name into a harmless base name (no folders, no ``..``, no control characters).

    The name is cut to :data:`MAX_NAME_BYTES` bytes of UTF-8 (file systems count bytes, not characters: 200
    ``é`` are 400 bytes), never inside a character, keeping the extension.

    Args:
        name: The name as the browser or user gave it, e.g. ``../../etc/passwd.txt``.

    Returns:
        A name such as ``passwd.txt``; never empty, never starting with a dot.
    """
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    base = base.strip().lstrip(".").strip()
    stem, ext = _split_extension(base)
    budget = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    # Decoding with errors="ignore" drops a character the byte cut went through.
    stem = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip()
    return stem + ext if stem else "unnamed" + ext


def save_upload(folder: Path, name: str, data: bytes) -> Path:
    """Save uploaded bytes under a safe name that no other file in ``folder`` has (``notes (2).txt``, ...).

    The file is created exclusively, so two uploads of the same name (in one batch, or from two browser tabs at
    once) never overwrite each other.

    Args:
        folder: Where uploads go (created if missing).
        name: The name the browser gave.
        data: The file's content.

    Returns:
        The path written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = safe_name(name)
    stem, ext = _split_extension(base)
    number = 1
    while True:
        candidate = folder / (base if number == 1 else f"{stem} ({number}){ext}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            number += 1
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return candidate


def _split_extension(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    # "Dr. Smith notes" has no extension, just a dot; an extension is short and alphanumeric.
    return (stem, ext) if re.fullmatch(r"\.[0-9A-Za-z]{1,10}", ext) else (name, "")
