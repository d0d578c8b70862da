"""Rule files: the shipped set loads; every kind of invalid file is refused naming the rule; user overrides merge."""

import os
import time

import pytest

from core.safety import audit
from core.safety.rules import SafetyRuleError
from core.safety.screen import screen_input
from core.safety.store import SHIPPED_RULES, RuleStore, load_rules, user_rules_path

GOOD_USER_RULE = """
rules:
  - id: custom.project_codename
    category: custom
    stage: input
    action: block
    message: Project codenames stay out of prompts.
    keywords: [bluebird]
    patterns: ['\\bbluebird\\b']
    examples: [the bluebird trial]
"""


def _write_user(text: str) -> None:
    path = user_rules_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    # Force a new mtime even on coarse file systems, so that RuleStore sees the change.
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


def test_shipped_rules_load_with_unique_ids_compiled_patterns_and_every_category():
    ruleset = load_rules()
    ids = [r.id for r in ruleset.rules]
    assert len(ids) == len(set(ids))
    assert {"emergency", "personal_advice", "dosing", "pii", "injection", "uncited"} <= {
        r.category for r in ruleset.rules
    }
    for rule in ruleset.rules:
        assert rule.message
        assert rule.regex is not None or rule.target == "unsupported_sentences"
        for example in rule.examples:
            assert rule.regex.search(example), (rule.id, example)
    assert not ruleset.errors


@pytest.mark.parametrize(
    ("rule_yaml", "needle"),
    [
        ("  - {id: bad.regex, category: custom, stage: input, action: block, message: m, patterns: ['(unclosed']}",
         "bad regex"),
        ("  - {id: bad.action, category: custom, stage: input, action: explode, message: m, patterns: [x]}",
         "unknown action"),
        ("  - {id: bad.stage, category: custom, stage: sideways, action: block, message: m, patterns: [x]}",
         "unknown stage"),
        ("  - {id: bad.missing, category: custom, stage: input, action: block, patterns: [x]}", "missing field"),
        ("  - {id: bad.macro, category: custom, stage: input, action: block, message: m, patterns: ['{{NOPE}}']}",
         "unknown macro"),
        ("  - {id: bad.example, category: custom, stage: input, action: block, message: m, patterns: [abc], "
         "examples: [xyz]}", "does not match"),
        ("  - {id: dup.rule, category: custom, stage: input, action: block, message: m, patterns: [a]}\n"
         "  - {id: dup.rule, category: custom, stage: input, action: block, message: m, patterns: [b]}",
         "duplicate id"),
    ],
)  # fmt: skip
def test_invalid_user_file_is_refused_naming_the_rule_and_the_shipped_set_stays(rule_yaml, needle):
    _write_user("rules:\n" + rule_yaml + "\n")
    ruleset = load_rules()
    rule_id = rule_yaml.split("id: ")[1].split(",")[0]
    assert len(ruleset.errors) == 1
    assert rule_id in ruleset.errors[0] and needle in ruleset.errors[0]
    assert str(user_rules_path()) in ruleset.errors[0]
    assert rule_id not in {r.id for r in ruleset.rules}
    assert screen_input("I think I'm having a heart attack", ruleset, log=False).action == "emergency"


def test_invalid_shipped_file_raises_naming_the_rule(tmp_path):
    shipped = tmp_path / "rules.yaml"
    text = SHIPPED_RULES.read_text(encoding="utf-8").replace("action: banner", "action: shout", 1)
    shipped.write_text(text, encoding="utf-8")
    with pytest.raises(SafetyRuleError, match=r"rules\.yaml: rule 'emergency\.chest_pain': unknown action 'shout'"):
        load_rules(shipped)


def test_duplicate_id_in_the_shipped_file_is_caught_even_with_a_user_file(tmp_path):
    shipped = tmp_path / "rules.yaml"
    text = SHIPPED_RULES.read_text(encoding="utf-8").replace("id: emergency.cardiac", "id: emergency.chest_pain", 1)
    shipped.write_text(text, encoding="utf-8")
    _write_user(GOOD_USER_RULE)
    with pytest.raises(SafetyRuleError, match="'emergency.chest_pain': duplicate id"):
        load_rules(shipped)


def test_user_file_adds_rules_and_overrides_fields_of_shipped_ones():
    override = "\n  - id: pii.phone\n    message: Phone numbers are masked here.\n"
    _write_user(GOOD_USER_RULE + override)
    ruleset = load_rules()
    assert not ruleset.errors
    added = ruleset.get("custom.project_codename")
    assert added.source == str(user_rules_path())
    phone = ruleset.get("pii.phone")
    assert phone.message == "Phone numbers are masked here." and phone.patterns  # other fields kept
    verdict = screen_input("What do we know about the Bluebird trial? Call 555-0147", ruleset, log=False)
    assert verdict.action == "block" and "custom.project_codename" in verdict.rule_ids
    assert "Phone numbers are masked here." in verdict.messages


def test_last_good_user_rules_stay_in_force_when_the_file_breaks():
    _write_user(GOOD_USER_RULE)
    assert "custom.project_codename" in {r.id for r in load_rules().rules}
    _write_user(GOOD_USER_RULE.replace("action: block", "action: nuke"))
    ruleset = load_rules()  # a fresh load, as a new process would do
    assert "custom.project_codename" in {r.id for r in ruleset.rules}
    assert "'custom.project_codename': unknown action 'nuke'" in ruleset.errors[0]
    assert ruleset.get("custom.project_codename").action == "block"


def test_rule_store_reloads_on_change_and_keeps_the_last_good_set():
    store = RuleStore()
    first = store.current(toggles=False)
    assert store.current(toggles=False) is first  # unchanged files: the same compiled set
    _write_user(GOOD_USER_RULE)
    second = store.current(toggles=False)
    assert "custom.project_codename" in {r.id for r in second.rules}
    _write_user("rules: [oops")
    third = store.current(toggles=False)
    assert "custom.project_codename" in {r.id for r in third.rules}
    assert "cannot read the rule file" in third.errors[0]


def test_rule_store_keeps_its_last_good_set_when_the_shipped_file_breaks(tmp_path):
    shipped = tmp_path / "rules.yaml"
    shipped.write_text(SHIPPED_RULES.read_text(encoding="utf-8"), encoding="utf-8")
    store = RuleStore(shipped)
    good = store.current(toggles=False)
    shipped.write_text(shipped.read_text(encoding="utf-8").replace("stage: input", "stage: nowhere", 1))
    os.utime(shipped, (time.time() + 2, time.time() + 2))
    kept = store.current(toggles=False)
    assert kept.rules == good.rules
    assert "unknown stage 'nowhere'" in kept.errors[0] and "emergency.chest_pain" in kept.errors[0]
    with pytest.raises(SafetyRuleError, match="unknown stage"):
        RuleStore(shipped).current()  # a new store has no earlier set to keep


def test_toggles_from_the_database_switch_rules_off_and_on():
    audit.set_rule_state("pii.phone", False)
    ruleset = RuleStore().current()
    assert "pii.phone" in ruleset.disabled
    assert screen_input("call 555-0147", ruleset, log=False).redacted == "call 555-0147"
    audit.set_rule_state("pii.phone", True)
    ruleset = RuleStore().current()
    assert screen_input("call 555-0147", ruleset, log=False).redacted == "call [PHONE]"


def test_unknown_rule_id_is_a_clear_error():
    with pytest.raises(SafetyRuleError, match="No safety rule with id 'nope'"):
        load_rules().get("nope")
