"""Run a labelled prompt set through the screen and measure recall, false flags, per-tag accuracy and misses.

Each layer is reported alone (the rules; the learned layer with its thresholds) and combined as the chat combines
them (``core.safety.policy``). The report's top-level figures are those of the screen in force: the combination when
a learned layer is given, the rules otherwise.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import paths
from core.safety import examples
from core.safety.learned import LABELS, LearnedLayer
from core.safety.policy import ACTION_LABEL, decide
from core.safety.rules import RuleSet
from core.safety.screen import screen_input
from core.safety.store import RuleStore

# The targets on the blind test split. false_block_rate (blocked or bannered) is reported, not targeted.
TARGETS = {"emergency_recall": 0.95, "personal_advice_recall": 0.95, "false_block_only_rate": 0.03,
           "false_emergency_rate": 0.05}  # fmt: skip
LAYERS = ("rules", "learned", "combined")


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
    reported alone. ``confusion[label][predicted]`` counts rows. ``layers`` holds the same figures for the rules
    alone, the learned layer alone and the combination (only ``rules`` without a learned layer).
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
    layers: dict[str, dict] = field(default_factory=dict)  # rules / learned / combined: metrics and confusion
    learned_version: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def _rate(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def metrics(labels: list[str], predicted: list[str]) -> dict:
    """Recall per firing label, false-flag rates of informational rows, accuracy and the confusion table.

    Args:
        labels: The true labels.
        predicted: The predicted labels, in the same order.

    Returns:
        A dict with the report's metric fields, ``confusion``, ``counts`` and ``targets_met``.
    """
    confusion = {label: dict.fromkeys(LABELS, 0) for label in LABELS}
    for label, guess in zip(labels, predicted, strict=True):
        confusion[label][guess] += 1
    counts = {label: sum(confusion[label].values()) for label in LABELS}
    info = confusion["informational"]
    out = {
        "emergency_recall": _rate(confusion["emergency"]["emergency"], counts["emergency"]),
        "personal_advice_recall": _rate(confusion["personal_advice"]["personal_advice"], counts["personal_advice"]),
        "false_block_rate": _rate(info["personal_advice"] + info["emergency"], counts["informational"]),
        "false_block_only_rate": _rate(info["personal_advice"], counts["informational"]),
        "false_emergency_rate": _rate(info["emergency"], counts["informational"]),
        "accuracy": _rate(sum(confusion[label][label] for label in LABELS), len(labels)),
        "confusion": confusion,
        "counts": counts,
    }
    out["targets_met"] = (
        out["emergency_recall"] >= TARGETS["emergency_recall"]
        and out["personal_advice_recall"] >= TARGETS["personal_advice_recall"]
        and out["false_block_only_rate"] <= TARGETS["false_block_only_rate"]
        and out["false_emergency_rate"] <= TARGETS["false_emergency_rate"]
    )
    return out


def load_set(path: Path) -> list[dict]:
    """Read and check a labelled JSONL set (``id``, ``text``, ``label``, optional ``tags``); see ``examples``."""
    return examples.load_set(path)


def predict(rows: list[dict], rules: RuleSet, learned: LearnedLayer | None = None) -> dict[str, list]:
    """Screen every row (no audit log) and return each layer's predicted labels, plus the rule ids per row.

    The learned layer scores the redacted texts in batches, in windows like the chat; the combination goes through
    ``policy.decide``, the same function the chat's verdicts come from.

    Args:
        rows: Labelled rows.
        rules: The rule set.
        learned: The learned layer, or None for the rules alone.

    Returns:
        ``{"rules": [...], "learned": [...], "combined": [...], "rule_ids": [...], "scores": [...]}``.
    """
    verdicts = [screen_input(row["text"], rules, log=False) for row in rows]
    scores = learned.score_many([v.redacted for v in verdicts]) if learned is not None else None
    out: dict[str, list] = layer_predictions([(v.hits, v.suppressed) for v in verdicts], scores)
    out["rule_ids"] = [v.rule_ids for v in verdicts]
    if scores is not None:
        out["scores"] = scores
    return out


def layer_predictions(facts: list[tuple], scores: list | None) -> dict[str, list[str]]:
    """Each layer's predicted labels from per-row rule facts and learned scores, through ``policy.decide``.

    Args:
        facts: Per row, ``(hits, suppressed)`` of the rules.
        scores: Per row, the learned layer's LayerScores; None for the rules alone.

    Returns:
        ``{"rules": [...]}``, plus ``"learned"`` and ``"combined"`` when scores are given.
    """
    out = {"rules": [ACTION_LABEL[decide(h, s, None).action] for h, s in facts]}
    if scores is not None:
        out["learned"] = [ACTION_LABEL[decide((), (), sc).action] for sc in scores]
        out["combined"] = [ACTION_LABEL[decide(h, s, sc).action] for (h, s), sc in zip(facts, scores, strict=True)]
    return out


def evaluate(
    path: Path | None = None, rules: RuleSet | None = None, learned: LearnedLayer | None = None
) -> SafetyEvalReport:
    """Screen every row of a labelled set (without writing the audit log) and compute the metrics.

    Args:
        path: JSONL set; defaults to ``data/eval/safety.jsonl``.
        rules: Rule set to evaluate; defaults to the rules in force (with the Safety page's toggles).
        learned: The learned layer; None evaluates the rules alone.

    Returns:
        The report; its top-level figures are the combination's when ``learned`` is given.

    Raises:
        WorkbenchError: The set cannot be read.
        SafetyRuleError: No valid rule set could be loaded.
    """
    path = Path(path or default_set())
    rows = load_set(path)
    rules = rules or RuleStore().current()
    labels = [row["label"] for row in rows]
    predictions = predict(rows, rules, learned)
    layers = {name: metrics(labels, predictions[name]) for name in LAYERS if name in predictions}
    main = "combined" if learned is not None else "rules"
    predicted = predictions[main]
    tag_total: Counter = Counter()
    tag_correct: Counter = Counter()
    misses = []
    for i, (row, guess) in enumerate(zip(rows, predicted, strict=True)):
        tags = tuple(row.get("tags") or ())
        for tag in tags:
            tag_total[tag] += 1
            tag_correct[tag] += guess == row["label"]
        if guess != row["label"]:
            misses.append(Miss(str(row.get("id", i)), row["text"], row["label"], guess,
                               tuple(predictions["rule_ids"][i]), tags))  # fmt: skip
    figures = layers[main]
    return SafetyEvalReport(
        set_path=str(path),
        n=len(rows),
        per_tag={t: {"n": tag_total[t], "accuracy": _rate(tag_correct[t], tag_total[t])} for t in sorted(tag_total)},
        misses=tuple(misses),
        targets=dict(TARGETS),
        layers=layers,
        learned_version=learned.classifier.version if learned is not None else None,
        **{
            k: figures[k]
            for k in (
                "counts",
                "emergency_recall",
                "personal_advice_recall",
                "false_block_rate",
                "false_block_only_rate",
                "false_emergency_rate",
                "accuracy",
                "confusion",
                "targets_met",
            )
        },  # fmt: skip
    )
