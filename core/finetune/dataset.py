"""Training data: load JSONL/JSON/CSV rows, recognise their format, turn them into chats, tokenize, split, report."""

import csv
import io
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import paths
from core.config import TrainConfig
from core.errors import WorkbenchError
from core.fileio import sha256_file
from core.finetune.template import Encoded, TemplateError, encode_conversation

MAX_FILE_MB = 500
MAX_ROW_ERRORS_LISTED = 50
ROLES = ("system", "user", "assistant")


class DatasetError(WorkbenchError):
    """The dataset cannot be used at all (missing, empty, unreadable, unknown format)."""


@dataclass(frozen=True)
class RowError:
    """Why one row was left out (``row`` counts from 1, as an editor shows lines)."""

    row: int
    reason: str


@dataclass(frozen=True)
class Segment:
    """A run of text that is either trained on (the answer) or only read (prompt and template)."""

    text: str
    trained: bool


@dataclass(frozen=True)
class PreviewExample:
    """One example exactly as the model sees it, split into trained and masked segments."""

    row: int
    n_tokens: int
    n_trained: int
    truncated: bool
    segments: list[Segment]


@dataclass
class DatasetReport:
    """What validation found; ``ok`` is false when nothing is left to train on."""

    path: str
    sha256: str
    format: str
    rows_total: int
    rows_ok: int = 0
    errors: list[RowError] = field(default_factory=list)
    n_errors: int = 0
    truncated: int = 0
    dropped_overlong: int = 0
    n_train: int = 0
    n_val: int = 0
    tokens_total: int = 0
    tokens_trained: int = 0
    max_tokens: int = 0
    preview: list[PreviewExample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether at least one example can be trained on."""
        return self.n_train > 0

    def to_dict(self) -> dict:
        """JSON-able form (the CLI's ``--check --json``)."""
        return {**asdict(self), "ok": self.ok}


@dataclass
class PreparedData:
    """Tokenized train and validation splits plus the report that describes them."""

    train: list[Encoded]
    val: list[Encoded]
    sample_prompts: list[list[dict]]  # conversations without their last answer: validation ones, else training
    report: DatasetReport
    val_conversations: list[list[dict]] = field(default_factory=list)  # the validation split as chat messages


def resolve_dataset(path: str) -> Path:
    """Find a dataset path as given, else relative to the workbench home or the repository (shipped data).

    Raises:
        DatasetError: If no such file exists.
    """
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates += [paths.home() / path, paths.REPO_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise DatasetError(f"Dataset file not found: {path}")


def load_rows(path: Path) -> tuple[list[dict], list[RowError]]:
    """Read a JSONL, JSON or CSV file into row dicts; unparsable JSONL lines become row errors.

    Raises:
        DatasetError: On an empty, binary, oversized or malformed file.
    """
    size = path.stat().st_size
    if size == 0:
        raise DatasetError(f"{path.name} is empty")
    if size > MAX_FILE_MB * 1e6:
        raise DatasetError(f"{path.name} is {size / 1e6:.0f} MB; the limit is {MAX_FILE_MB} MB")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise DatasetError(f"{path.name} looks binary; expected JSONL, JSON or CSV text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    rows: list[dict] = []
    errors: list[RowError] = []
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(RowError(number, f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(value, dict):
                errors.append(RowError(number, "not a JSON object"))
                continue
            rows.append({"_row": number, **value})
    elif suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path.name}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if isinstance(value, dict):  # {"data": [...]} or {"train": [...]}: the single list inside
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DatasetError(f"{path.name}: expected a list of examples (or an object holding one list)")
            value = lists[0]
        if not isinstance(value, list):
            raise DatasetError(f"{path.name}: expected a list of examples")
        for number, item in enumerate(value, start=1):
            if isinstance(item, dict):
                rows.append({"_row": number, **item})
            else:
                errors.append(RowError(number, "not a JSON object"))
    elif suffix in (".csv", ".tsv"):
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
            for number, item in enumerate(reader, start=2):  # row 1 is the header
                if None in item:
                    errors.append(RowError(number, "more cells than header columns"))
                    continue
                rows.append({"_row": number, **item})
        except csv.Error as exc:
            raise DatasetError(f"{path.name}: malformed CSV: {exc}") from None
    else:
        raise DatasetError(f"{path.name}: unsupported file type {suffix or '(none)'}; use .jsonl, .json or .csv")
    if not rows and not errors:
        raise DatasetError(f"{path.name} has no examples")
    return rows, errors


def detect_format(rows: list[dict]) -> str:
    """Recognise the dataset format from the first row's keys.

    Raises:
        DatasetError: If the keys fit no known format.
    """
    keys = set(rows[0]) - {"_row"} if rows else set()
    if "messages" in keys:
        return "messages"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    raise DatasetError(
        f"Unrecognised columns ({', '.join(sorted(keys)) or 'none'}): expected 'messages', 'prompt' + 'completion', "
        "'instruction' + 'output' (Alpaca), or choose the prompt and answer columns (format 'columns')"
    )


def to_messages(row: dict, fmt: str, config: TrainConfig) -> list[dict]:
    """Turn one row into a chat, validating it.

    Raises:
        ValueError: With the reason the row cannot be used.
    """
    if fmt == "messages":
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        messages = [_message(m) for m in messages]
    elif fmt == "prompt_completion":
        messages = _turns(row, "prompt", "user") + _turns(row, "completion", "assistant")
    elif fmt == "alpaca":
        instruction, extra = _text(row, "instruction"), row.get("input") or ""
        if not isinstance(extra, str):
            raise ValueError("'input' must be text")
        prompt = instruction + (f"\n\n{extra.strip()}" if extra.strip() else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(row, "output")}]
    else:  # columns
        messages = [
            {"role": "user", "content": _text(row, config.prompt_column)},
            {"role": "assistant", "content": _text(row, config.completion_column)},
        ]
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant answer to learn")
    if config.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": config.system_prompt}, *messages]
    return messages


def _text(row: dict, key: str | None) -> str:
    value = row.get(key) if key else None
    if value is None:
        raise ValueError(f"missing column '{key}'")
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"'{key}' is empty")
    return value.strip()


def _message(value: object) -> dict:
    if not isinstance(value, dict) or value.get("role") not in ROLES:
        raise ValueError(f"each message needs a role among {', '.join(ROLES)}")
    content = value.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"a {value['role']} message has empty or non-text content")
    return {"role": value["role"], "content": content.strip()}


def _turns(row: dict, key: str, role: str) -> list[dict]:
    # TRL's conversational prompt/completion rows hold message lists instead of strings.
    value = row.get(key)
    if isinstance(value, list):
        return [_message(m) for m in value]
    return [{"role": role, "content": _text(row, key)}]


def prepare(config: TrainConfig, tokenizer, n_preview: int = 3) -> PreparedData:
    """Load, validate, tokenize and split the dataset of ``config``.

    Args:
        config: The run configuration (dataset, format, max_length, overlong, val_fraction, seed).
        tokenizer: The base model's tokenizer with a chat template (see ``template.ensure_chat_template``).
        n_preview: Examples to include in the report's preview.

    Returns:
        The splits and the report. Rows that do not fit are listed in ``report.errors``, not raised.

    Raises:
        DatasetError: If the file is unusable or no row is left.
    """
    path = resolve_dataset(config.dataset)
    rows, errors = load_rows(path)
    fmt = config.dataset_format if config.dataset_format != "auto" else detect_format(rows)
    report = DatasetReport(str(path), sha256_file(path), fmt, len(rows) + len(errors))
    examples: list[tuple[int, list[dict], Encoded, bool]] = []
    for row in rows:
        try:
            messages = to_messages(row, fmt, config)
            encoded = encode_conversation(tokenizer, messages)
        except (ValueError, TemplateError) as exc:
            errors.append(RowError(row["_row"], str(exc)))
            continue
        truncated = False
        if len(encoded.input_ids) > config.max_length:
            if config.overlong == "drop":
                report.dropped_overlong += 1
                errors.append(RowError(row["_row"], f"{len(encoded.input_ids)} tokens > max_length; dropped"))
                continue
            encoded = Encoded(encoded.input_ids[: config.max_length], encoded.labels[: config.max_length])
            if encoded.n_trained == 0:
                errors.append(RowError(row["_row"], "the answer starts after max_length tokens; dropped"))
                continue
            truncated = True
            report.truncated += 1
        examples.append((row["_row"], messages, encoded, truncated))
    errors.sort(key=lambda e: e.row)
    report.n_errors, report.errors = len(errors), errors[:MAX_ROW_ERRORS_LISTED]
    report.rows_ok = len(examples)
    if not examples:
        reasons = "; ".join(f"row {e.row}: {e.reason}" for e in errors[:3])
        raise DatasetError(f"No usable examples in {path.name} ({fmt}): {reasons}")
    report.preview = [_preview(tokenizer, row, enc, cut) for row, _m, enc, cut in examples[:n_preview]]
    order = list(range(len(examples)))
    random.Random(config.seed).shuffle(order)
    n_val = round(len(examples) * config.val_fraction) if len(examples) >= 10 else 0
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
    train = [examples[i][2] for i in train_idx]
    val = [examples[i][2] for i in val_idx]
    sample_prompts = [_prompt_part(examples[i][1]) for i in (val_idx or train_idx)]
    report.n_train, report.n_val = len(train), len(val)
    report.tokens_total = sum(len(e[2].input_ids) for e in examples)
    report.tokens_trained = sum(e[2].n_trained for e in examples)
    report.max_tokens = max(len(e[2].input_ids) for e in examples)
    return PreparedData(
        train=train,
        val=val,
        sample_prompts=sample_prompts,
        report=report,
        val_conversations=[examples[i][1] for i in val_idx],
    )


def _prompt_part(messages: list[dict]) -> list[dict]:
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def _preview(tokenizer, row: int, encoded: Encoded, truncated: bool) -> PreviewExample:
    segments: list[Segment] = []
    start = 0
    ids, trained = encoded.input_ids, [label != -100 for label in encoded.labels]
    for end in range(1, len(ids) + 1):
        if end == len(ids) or trained[end] != trained[start]:
            segments.append(Segment(tokenizer.decode(ids[start:end]), trained[start]))
            start = end
    return PreviewExample(row, len(ids), encoded.n_trained, truncated, segments)
