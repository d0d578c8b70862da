"""How the rules and the learned layer combine into one verdict: the decision table, in code.

For each of the two labels that change what the user sees (``emergency`` raises the banner, ``personal_advice``
blocks), with a rule hit that counts, a rule match the rules themselves suppressed (negation, quotation, fiction /
teaching / research framing, a resolved past event), and the learned layer's probability ``p``:

| rule hit that counts | suppressed match only | learned probability          | the label fires | named layer |
|----------------------|-----------------------|------------------------------|-----------------|-------------|
| yes                  | (any)                 | (any)                        | yes             | rules       |
| no                   | no                    | p >= threshold               | yes             | learned     |
| no                   | no                    | p < threshold                | no              |             |
| no                   | yes                   | p >= override (>= threshold) | yes             | learned     |
| no                   | yes                   | p < override                 | no (suppressed) |             |

Then: an emergency wins over a block (an informational answer is allowed, the banner first); neither gives allow.
Without a learned layer (or with one that failed to load) only the rule column counts. The rules keep precedence for
what they match explicitly; the learned layer catches what no rule lists. Thresholds and overrides are chosen on
the dev split for a false-flag budget and stored in the layer's manifest.
"""

from dataclasses import dataclass

from core.safety.learned import LayerScores

FIRING = ("emergency", "personal_advice")
# What each verdict action means as a label: a block is the personal-advice answer.
ACTION_LABEL = {"emergency": "emergency", "block": "personal_advice", "allow": "informational"}
LEARNED_MESSAGES = {
    "emergency": (
        "This may be a medical emergency. If someone's life may be in danger, call your local emergency number now "
        "(for example 911, 112 or 999); if you are thinking about harming yourself, call or text a crisis line "
        "such as 988 in the US or Samaritans on 116 123 in the UK and Ireland. MedGemma Workbench is a research "
        "tool, not a medical device, and it cannot help in an emergency."
    ),
    "personal_advice": (
        "This reads as a request for advice about a particular person's diagnosis, medicines or treatment. The "
        "workbench cannot give personal medical advice: please ask a doctor, nurse or pharmacist who knows the "
        "person. You can still ask general questions, such as what a guideline or a drug label says."
    ),
}


@dataclass(frozen=True)
class Decision:
    """The verdict's action and, per firing label, which layer fired it (``rules``, ``learned`` or None)."""

    action: str
    fired: dict[str, str | None]

    @property
    def layer(self) -> str | None:
        """The layer behind the action: the one that fired its label (None for allow)."""
        label = ACTION_LABEL[self.action]
        return self.fired.get(label) if label in FIRING else None


def rule_label(category: str, action: str) -> str | None:
    """The firing label a rule hit stands for: emergency (a banner rule), personal_advice (any block), or None."""
    if category == "emergency" and action == "banner":
        return "emergency"
    if action == "block":
        return "personal_advice"
    return None


def label_fires(counts: bool, suppressed: bool, p: float | None, threshold: float, override: float) -> str | None:
    """One row of the decision table: which layer fires this label (None: it does not fire).

    Args:
        counts: A rule of this label matched and was not suppressed.
        suppressed: A rule of this label matched but the rules suppressed every such match.
        p: The learned layer's probability for the label (None without a learned layer).
        threshold: The layer's threshold for the label.
        override: The probability needed where the rules suppressed a match.

    Returns:
        ``rules``, ``learned`` or None.
    """
    if counts:
        return "rules"
    if p is None:
        return None
    if p >= (max(override, threshold) if suppressed else threshold):
        return "learned"
    return None


def decide(hits, suppressed, scores: LayerScores | None) -> Decision:
    """Combine rule hits, suppressed rule matches and the learned scores (see the table in the module docstring).

    Args:
        hits: The rule hits that count (RuleHit objects).
        suppressed: The rule matches the rules suppressed.
        scores: The learned layer's scores, or None.

    Returns:
        The decision.
    """
    counted = {rule_label(h.category, h.action) for h in hits}
    quiet = {rule_label(h.category, h.action) for h in suppressed}
    fired = {}
    for label in FIRING:
        p = scores.probs[label] if scores is not None else None
        threshold = scores.thresholds[label] if scores is not None else 1.0
        override = scores.overrides.get(label, 1.0) if scores is not None else 1.0
        fired[label] = label_fires(label in counted, label in quiet, p, threshold, override)
    if fired["emergency"]:
        action = "emergency"
    elif fired["personal_advice"]:
        action = "block"
    else:
        action = "allow"
    return Decision(action, fired)
