"""Labelled safety prompts as data: the shipped train / dev / test splits beside the rules, and the user's own.

The shipped splits live in ``core/safety/examples/`` (see its ``README.md``: who wrote each part and how they were
split). A user's examples (added on the Safety page, from a chat message whose verdict was wrong, or from a file)
go to ``<home>/safety/examples.user.jsonl`` and join the training split when the layer is retrained.
"""

import csv
import fcntl
import hashlib
import io
import json
import threading
from pathlib import Path

from core import paths
from core.errors import WorkbenchError
from core.fileio import atomic_write_bytes, read_jsonl
from core.safety.learned import LABELS
from core.safety.normalize import fold

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
SPLITS = ("train", "dev", "test")
MAX_TEXT_CHARS = 8000  # what the chat accepts as one question
MAX_IMPORT_ROWS = 20_000
_LOCK = threading.Lock()


class _Locked:
    """Serialise writers of the user's examples across threads and processes (the page, the CLI, a job)."""

    def __enter__(self) -> None:
        _LOCK.acquire()
        path = user_examples_path().with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        _LOCK.release()


def split_path(split: str) -> Path:
    """The shipped JSONL file of a split (train, dev or test)."""
    if split not in SPLITS:
        raise WorkbenchError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return EXAMPLES_DIR / f"{split}.jsonl"


def user_examples_path() -> Path:
    """The user's own labelled examples: ``<home>/safety/examples.user.jsonl``."""
    return paths.home() / "safety" / "examples.user.jsonl"


def check_row(row: object, where: str) -> dict:
    """Validate one labelled row (``text`` and ``label`` required; ``id``, ``tags``, ``note``, ``writer`` kept).

    Raises:
        WorkbenchError: Naming ``where`` and what is wrong.
    """
    if not isinstance(row, dict):
        raise WorkbenchError(f"{where}: each row must be an object with 'text' and 'label'")
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        raise WorkbenchError(f"{where}: 'text' must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise WorkbenchError(f"{where}: 'text' is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    if label not in LABELS:
        raise WorkbenchError(f"{where}: 'label' must be one of {', '.join(LABELS)}, got {label!r}")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise WorkbenchError(f"{where}: 'tags' must be a list of strings")
    return row


def load_set(path: Path) -> list[dict]:
    """Read and check a labelled JSONL set.

    Args:
        path: The JSONL file.

    Returns:
        The rows.

    Raises:
        WorkbenchError: The file is missing, empty, or a row is malformed (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"Labelled set {path} does not exist.")
    rows = [check_row(row, f"{path}:{n}") for n, row in enumerate(read_jsonl(path), 1)]
    if not rows:
        raise WorkbenchError(f"Labelled set {path} is empty.")
    return rows


def load_split(split: str) -> list[dict]:
    """Read a shipped split."""
    return load_set(split_path(split))


def split_hash(split: str) -> str:
    """``data_hash`` of a shipped split as it is now (what a layer's manifest records it by)."""
    return data_hash(load_split(split))


def user_examples() -> list[dict]:
    """The user's examples (none when the file does not exist)."""
    path = user_examples_path()
    return load_set(path) if path.exists() and path.stat().st_size else []


def key(text: str) -> str:
    """Identity of a prompt for de-duplication: the folded text, lower case, whitespace collapsed."""
    return " ".join(fold(text).text.lower().split())


def data_hash(rows: list[dict]) -> str:
    """sha256 over the (text, label) pairs, in order: what a trained layer records it was fitted on."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row["text"], row["label"]], ensure_ascii=False).encode())
    return digest.hexdigest()


def parse_upload(name: str, data: bytes) -> list[dict]:
    """Read labelled rows from an uploaded JSONL or CSV file (columns / keys ``text`` and ``label``).

    Args:
        name: The file name (its suffix picks the format).
        data: The file's bytes.

    Returns:
        The checked rows.

    Raises:
        WorkbenchError: An unknown format, undecodable bytes, too many rows, or a bad row (naming it).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"{name} is not UTF-8 text: {exc}") from exc
    suffix = Path(name).suffix.lower()
    rows: list = []
    if suffix in (".jsonl", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise WorkbenchError(f"{name}:{n}: not JSON: {exc}") from exc
            if len(rows) > MAX_IMPORT_ROWS:
                break
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
            raise WorkbenchError(f"{name}: a CSV needs 'text' and 'label' columns")
        for row in reader:
            rows.append({k: v for k, v in row.items() if k in ("text", "label", "note", "id")})
            if len(rows) > MAX_IMPORT_ROWS:
                break
    else:
        raise WorkbenchError(f"{name}: use a .jsonl or .csv file with 'text' and 'label'")
    if len(rows) > MAX_IMPORT_ROWS:
        raise WorkbenchError(f"{name}: more than {MAX_IMPORT_ROWS:,} rows; split the file")
    if not rows:
        raise WorkbenchError(f"{name} holds no rows")
    return [check_row(row, f"{name}:{n}") for n, row in enumerate(rows, 1)]


def add_examples(rows: list[dict], source: str) -> dict:
    """Add labelled rows to the user's examples (all checked first: a bad row adds nothing).

    A row whose text is already there (after folding) replaces the older label: the newest correction wins.

    Args:
        rows: Rows with ``text`` and ``label`` (``note``, ``tags`` kept).
        source: Where they came from (``safety page``, ``chat verdict``, a file name), stored on each row.

    Returns:
        ``{"added": n, "relabelled": n, "total": n}``.

    Raises:
        WorkbenchError: A row is malformed.
    """
    checked = [check_row(dict(row), f"row {n}") for n, row in enumerate(rows, 1)]
    path = user_examples_path()
    with _Locked():
        existing = user_examples()
        by_key = {key(r["text"]): r for r in existing}
        added = relabelled = 0
        for row in checked:
            clean = {"id": row.get("id") or f"user-{hashlib.sha256(key(row['text']).encode()).hexdigest()[:10]}",
                     "text": row["text"], "label": row["label"], "writer": "user", "source": source,
                     "tags": list(row.get("tags", [])), "note": str(row.get("note", ""))}  # fmt: skip
            k = key(row["text"])
            if k in by_key:
                relabelled += by_key[k]["label"] != row["label"]
            else:
                added += 1
            by_key[k] = clean
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in by_key.values())
        atomic_write_bytes(path, body.encode("utf-8"))
    return {"added": added, "relabelled": relabelled, "total": len(by_key)}


def remove_example(example_id: str) -> bool:
    """Delete one of the user's examples by id; returns whether it existed."""
    with _Locked():
        rows = user_examples()
        kept = [r for r in rows if r.get("id") != example_id]
        if len(kept) == len(rows):
            return False
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
        atomic_write_bytes(user_examples_path(), body.encode("utf-8"))
    return True
