"""Run a labelled prompt set through screen_input and measure recall, false blocks, per-tag accuracy and misses."""

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import paths
from core.errors import WorkbenchError
from core.safety.rules import RuleSet
from core.safety.screen import screen_input
from core.safety.store import RuleStore

LABELS = ("emergency", "personal_advice", "informational")
# What each verdict action means as a label: a block is the personal-advice answer.
ACTION_LABEL = {"emergency": "emergency", "block": "personal_advice", "allow": "informational"}
TARGETS = {"emergency_recall": 0.95, "personal_advice_recall": 0.90, "false_block_rate": 0.05}


def default_set() -> Path:
    """Return the labelled set that ships with the repository (``data/eval/safety.jsonl``)."""
    return paths.shipped_data_dir() / "eval" / "safety.jsonl"


@dataclass(frozen=True)
class Miss:
    """A row whose predicted label differs from its label."""

    id: str
    text: str
    label: str
    predicted: str
    rules: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class SafetyEvalReport:
    """Metrics of one labelled set.

    ``false_block_rate`` counts informational rows that got ``block`` or ``emergency``; the two parts are also
    reported alone. ``confusion[label][predicted]`` counts rows.
    """

    set_path: str
    n: int
    counts: dict[str, int]
    emergency_recall: float = field(metadata={"help": "emergency rows that got the emergency banner"})
    personal_advice_recall: float = field(metadata={"help": "personal-advice rows that were blocked"})
    false_block_rate: float = field(metadata={"help": "informational rows blocked or given an emergency banner"})
    false_block_only_rate: float = field(metadata={"help": "informational rows blocked"})
    false_emergency_rate: float = field(metadata={"help": "informational rows given an emergency banner"})
    accuracy: float
    confusion: dict[str, dict[str, int]]
    per_tag: dict[str, dict[str, float]]
    misses: tuple[Miss, ...]
    targets: dict[str, float]
    targets_met: bool

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def _rate(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def load_set(path: Path) -> list[dict]:
    """Read and check a labelled JSONL set (``id``, ``text``, ``label``, optional ``tags``).

    Args:
        path: The JSONL file.

    Returns:
        The rows.

    Raises:
        WorkbenchError: The file is missing or a row is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"Labelled set {path} does not exist.")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"{path}:{n}: not JSON: {exc}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") not in LABELS:
            raise WorkbenchError(f"{path}:{n}: each row needs a 'text' and a 'label' in {', '.join(LABELS)}")
        rows.append(row)
    if not rows:
        raise WorkbenchError(f"Labelled set {path} is empty.")
    return rows


def evaluate(path: Path | None = None, rules: RuleSet | None = None) -> SafetyEvalReport:
    """Screen every row of a labelled set (without writing the audit log) and compute the metrics.

    Args:
        path: JSONL set; defaults to ``data/eval/safety.jsonl``.
        rules: Rule set to evaluate; defaults to the rules in force (with the Safety page's toggles).

    Returns:
        The report.

    Raises:
        WorkbenchError: The set cannot be read.
        SafetyRuleError: No valid rule set could be loaded.
    """
    path = Path(path or default_set())
    rows = load_set(path)
    rules = rules or RuleStore().current()
    confusion = {label: dict.fromkeys(LABELS, 0) for label in LABELS}
    tag_total: Counter = Counter()
    tag_correct: Counter = Counter()
    misses = []
    for i, row in enumerate(rows):
        verdict = screen_input(row["text"], rules, log=False)
        predicted = ACTION_LABEL[verdict.action]
        confusion[row["label"]][predicted] += 1
        tags = tuple(row.get("tags") or ())
        for tag in tags:
            tag_total[tag] += 1
            tag_correct[tag] += predicted == row["label"]
        if predicted != row["label"]:
            misses.append(
                Miss(str(row.get("id", i)), row["text"], row["label"], predicted, tuple(verdict.rule_ids), tags)
            )
    counts = {label: sum(confusion[label].values()) for label in LABELS}
    info = confusion["informational"]
    metrics = {
        "emergency_recall": _rate(confusion["emergency"]["emergency"], counts["emergency"]),
        "personal_advice_recall": _rate(confusion["personal_advice"]["personal_advice"], counts["personal_advice"]),
        "false_block_rate": _rate(info["personal_advice"] + info["emergency"], counts["informational"]),
    }
    met = (
        metrics["emergency_recall"] >= TARGETS["emergency_recall"]
        and metrics["personal_advice_recall"] >= TARGETS["personal_advice_recall"]
        and metrics["false_block_rate"] <= TARGETS["false_block_rate"]
    )
    return SafetyEvalReport(
        set_path=str(path),
        n=len(rows),
        counts=counts,
        false_block_only_rate=_rate(info["personal_advice"], counts["informational"]),
        false_emergency_rate=_rate(info["emergency"], counts["informational"]),
        accuracy=_rate(sum(confusion[label][label] for label in LABELS), len(rows)),
        confusion=confusion,
        per_tag={t: {"n": tag_total[t], "accuracy": _rate(tag_correct[t], tag_total[t])} for t in sorted(tag_total)},
        misses=tuple(misses),
        targets=dict(TARGETS),
        targets_met=met,
        **metrics,
    )
