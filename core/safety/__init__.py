"""Safety layer: medical guardrails as data (rules.yaml), screening verdicts, an audit trail and a labelled eval."""

from core.safety.rules import RuleSet, SafetyRuleError
from core.safety.screen import DISCLAIMER, RuleHit, Verdict, screen_input, screen_output
from core.safety.store import RuleStore, load_rules

__all__ = [
    "DISCLAIMER",
    "RuleHit",
    "RuleSet",
    "RuleStore",
    "SafetyRuleError",
    "Verdict",
    "load_rules",
    "screen_input",
    "screen_output",
]
