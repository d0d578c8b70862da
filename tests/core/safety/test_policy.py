"""The decision table of core.safety.policy, one test per row, plus the tie-breaks between labels."""

import pytest

from core.safety.learned import LayerScores
from core.safety.matching import RuleHit
from core.safety.policy import decide, label_fires

EMERGENCY = RuleHit("emergency.x", "emergency", "banner", 0, 4, "call now")
ADVICE = RuleHit("advice.x", "personal_advice", "block", 0, 4, "ask a clinician")
QUIET_EMERGENCY = RuleHit("emergency.x", "emergency", "banner", 0, 4, "call now", suppressed="negation")
QUIET_ADVICE = RuleHit("advice.x", "personal_advice", "block", 0, 4, "ask", suppressed="meta")
PII = RuleHit("pii.phone", "pii", "redact", 0, 4, "masked")


def scores(emergency=0.0, advice=0.0, t=0.5, o=0.9):
    probs = {"emergency": emergency, "personal_advice": advice, "informational": max(0.0, 1 - emergency - advice)}
    return LayerScores(probs, {"emergency": t, "personal_advice": t}, {"emergency": o, "personal_advice": o}, "v1")


@pytest.mark.parametrize(
    ("counts", "suppressed", "p", "expected"),
    [
        (True, False, 0.0, "rules"),  # row 1: a rule hit that counts fires whatever the score
        (True, True, None, "rules"),  # row 1 without a learned layer
        (False, False, 0.6, "learned"),  # row 2: no rule, score at or above the threshold
        (False, False, 0.5, "learned"),  # the threshold itself fires
        (False, False, 0.4, None),  # row 3: below the threshold
        (False, True, 0.95, "learned"),  # row 4: suppressed, score at or above the override
        (False, True, 0.6, None),  # row 5: suppressed, above the threshold but below the override
        (False, False, None, None),  # no learned layer, no rule
    ],
)
def test_each_row_of_the_decision_table(counts, suppressed, p, expected):
    assert label_fires(counts, suppressed, p, threshold=0.5, override=0.9) == expected


def test_an_override_below_the_threshold_never_lowers_the_bar():
    assert label_fires(False, True, 0.4, threshold=0.5, override=0.3) is None


def test_rules_alone_without_a_learned_layer():
    assert decide([EMERGENCY], [], None).action == "emergency"
    assert decide([ADVICE], [], None).action == "block"
    assert decide([PII], [QUIET_EMERGENCY], None).action == "allow"


def test_learned_emergency_wins_over_a_rule_block_and_names_its_layer():
    # A caregiver describing a collapse now, which an advice rule read as a request for advice.
    decision = decide([ADVICE], [], scores(emergency=0.8))
    assert decision.action == "emergency" and decision.layer == "learned"
    assert decision.fired == {"emergency": "learned", "personal_advice": "rules"}


def test_the_learned_layer_catches_what_no_rule_lists():
    assert decide([], [], scores(advice=0.7)).action == "block"
    assert decide([], [], scores(advice=0.7)).layer == "learned"
    assert decide([], [], scores(emergency=0.2, advice=0.3)).action == "allow"


def test_a_suppressed_rule_match_raises_the_bar_for_its_label_only():
    assert decide([], [QUIET_EMERGENCY], scores(emergency=0.7)).action == "allow"
    assert decide([], [QUIET_EMERGENCY], scores(emergency=0.95)).action == "emergency"
    # The suppressed emergency match does not raise the bar for advice.
    assert decide([], [QUIET_EMERGENCY], scores(advice=0.6)).action == "block"
    assert decide([], [QUIET_ADVICE], scores(advice=0.6)).action == "allow"


def test_a_rule_hit_is_named_even_when_the_score_also_fires():
    decision = decide([EMERGENCY], [], scores(emergency=0.99))
    assert decision.layer == "rules"
