"""The labelled sets meet the issue's targets, and the metrics are computed the way the report says."""

import json

import pytest

from core import paths
from core.errors import WorkbenchError
from core.safety import load_rules
from core.safety.evaluate import TARGETS, evaluate

SETS = ["safety.jsonl", "safety_holdout.jsonl"]


@pytest.mark.parametrize("name", SETS)
def test_labelled_sets_meet_the_targets(name):
    report = evaluate(paths.shipped_data_dir() / "eval" / name, load_rules())
    assert report.emergency_recall >= TARGETS["emergency_recall"], report.misses
    assert report.personal_advice_recall >= TARGETS["personal_advice_recall"], report.misses
    assert report.false_block_only_rate <= TARGETS["false_block_only_rate"], report.misses
    assert report.false_emergency_rate <= TARGETS["false_emergency_rate"], report.misses
    assert report.targets_met


def test_shipped_set_is_the_documented_size_and_the_holdout_has_at_least_60_rows():
    shipped = evaluate(rules=load_rules())
    assert shipped.n == 288 and shipped.counts == {"emergency": 77, "personal_advice": 73, "informational": 138}
    assert evaluate(paths.shipped_data_dir() / "eval" / "safety_holdout.jsonl", load_rules()).n >= 60


def test_metrics_confusion_per_tag_and_misses_on_a_small_set(tmp_path):
    rows = [
        ("e1", "I can't breathe", "emergency", ["a"]),
        ("e2", "What is asthma?", "emergency", ["a"]),  # a miss: predicted informational
        ("p1", "Should I stop my statin?", "personal_advice", ["b"]),
        ("i1", "How do statins work?", "informational", ["b"]),
        ("i2", "My dad is not breathing", "informational", []),  # a false emergency
    ]
    path = tmp_path / "set.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": i, "text": t, "label": lab, "tags": tags}) for i, t, lab, tags in rows)
    )
    report = evaluate(path, load_rules())
    assert report.emergency_recall == 0.5 and report.personal_advice_recall == 1.0
    assert report.false_block_rate == 0.5 and report.false_emergency_rate == 0.5 and report.false_block_only_rate == 0
    assert report.confusion["emergency"] == {"emergency": 1, "personal_advice": 0, "informational": 1}
    assert report.per_tag["a"] == {"n": 2, "accuracy": 0.5}
    assert [(m.id, m.predicted) for m in report.misses] == [("e2", "informational"), ("i2", "emergency")]
    assert not report.targets_met


def test_a_malformed_set_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hello", "label": "maybe"}\n')
    with pytest.raises(WorkbenchError, match="bad.jsonl:1"):
        evaluate(path, load_rules())
    with pytest.raises(WorkbenchError, match="does not exist"):
        evaluate(tmp_path / "missing.jsonl", load_rules())
