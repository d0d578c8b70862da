"""Eval sets: JSONL rows of ``question``, ``reference`` (one or more), optional ``gold_sources`` and ``tags``.

A bad row (blank lines are skipped silently; broken JSON, a missing or empty field, a wrong type) is reported with
its line number and left out; the run goes on with the rest. A set with no usable row is refused.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import WorkbenchError


class EvalSetError(WorkbenchError):
    """An eval set cannot be read or has no usable row."""


@dataclass(frozen=True)
class EvalItem:
    """One question of an eval set."""

    id: str
    question: str
    references: list[str]
    gold_sources: list[dict] = field(default_factory=list)  # [{"file": name, "page": n or None}]
    tags: list[str] = field(default_factory=list)
    line: int = 0

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class EvalSet:
    """The usable rows of a file and the rows that were left out, with why."""

    path: str
    items: list[EvalItem]
    bad_rows: list[dict]  # [{"line": n, "error": "..."}]

    def select(self, tags: list[str] | None = None, limit: int = 0) -> list[EvalItem]:
        """The items carrying one of ``tags`` (all when empty), the first ``limit`` of them (all when 0)."""
        chosen = [it for it in self.items if not tags or set(tags) & set(it.tags)]
        return chosen[:limit] if limit else chosen


def load_eval_set(path: str | Path) -> EvalSet:
    """Read and validate an eval set.

    Raises:
        EvalSetError: If the file is missing or unreadable, or no row is usable.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalSetError(f"Eval set not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"Cannot read eval set {path}: {exc}") from None
    items, bad, seen = [], [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = parse_row(line, number)
        except ValueError as exc:
            bad.append({"line": number, "error": str(exc)})
            continue
        if item.id in seen:
            bad.append({"line": number, "error": f"id {item.id!r} appears twice (first use kept)"})
            continue
        seen.add(item.id)
        items.append(item)
    if not items:
        detail = "; ".join(f"line {b['line']}: {b['error']}" for b in bad[:5])
        raise EvalSetError(f"{path} has no usable question" + (f" ({detail})" if detail else " (the file is empty)"))
    return EvalSet(str(path), items, bad)


def parse_row(line: str, number: int) -> EvalItem:
    """One JSONL line as an item.

    Raises:
        ValueError: Saying what is wrong with the row.
    """
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError("a row must be a JSON object")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing or empty 'question'")
    # "answer" and gold_source/gold_page are the field names of the retrieval set (data/eval/retrieval.jsonl).
    references = row.get("reference", row.get("references", row.get("answer")))
    if isinstance(references, str):
        references = [references]
    if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
        raise ValueError("'reference' must be a string or a non-empty list of strings")
    if not all(r.strip() for r in references):
        # A blank reference would give a failed (empty) answer full exact-match credit.
        raise ValueError("'reference' has a blank entry")
    gold = row.get("gold_sources", [])
    if not gold and isinstance(row.get("gold_source"), str):
        gold = [{"file": row["gold_source"], "page": row.get("gold_page")}]
    if isinstance(gold, (str, dict)):
        gold = [gold]
    if not isinstance(gold, list):
        raise ValueError("'gold_sources' must be a list of {file, page}")
    golds = []
    for g in gold:
        g = {"file": g} if isinstance(g, str) else g
        if not isinstance(g, dict) or not isinstance(g.get("file"), str) or not g["file"]:
            raise ValueError("each gold source needs a 'file'")
        page = g.get("page")
        if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
            raise ValueError(f"gold page must be a page number from 1 (got {page!r})")
        golds.append({"file": g["file"].replace("\\", "/").rsplit("/", 1)[-1], "page": page})
    tags = row.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    return EvalItem(str(row.get("id", f"line{number}")), question.strip(), references, golds, tags, number)
