"""Eval sets: validation of JSONL rows with line numbers, selection, and the shipped demo set."""

import json
from pathlib import Path

import pytest

from core.evaluate.sets import EvalSetError, load_eval_set

REPO_ROOT = Path(__file__).resolve().parents[3]


def _write(tmp_path, lines):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
                    encoding="utf-8")  # fmt: skip
    return path


GOOD = [
    {"id": "q1", "question": "What corrects QT?", "reference": "Bazett's formula",
     "gold_sources": [{"file": "ecg_basics.md", "page": None}], "tags": ["ecg", "seen"]},
    {"id": "q2", "question": "  Name a beta blocker.  ", "reference": ["bisoprolol", "metoprolol"],
     "gold_sources": [{"file": "docs/heart_failure_guide.pdf", "page": 3}], "tags": "drugs"},
    {"question": "Unseen one?", "references": ["yes"], "gold_sources": "lipids.txt", "tags": ["unseen"]},
]  # fmt: skip


def test_good_rows_load(tmp_path):
    evalset = load_eval_set(_write(tmp_path, GOOD))
    assert evalset.bad_rows == []
    assert evalset.path == str(tmp_path / "set.jsonl")
    q1, q2, q3 = evalset.items
    assert (q1.id, q1.question, q1.references, q1.line) == ("q1", "What corrects QT?", ["Bazett's formula"], 1)
    assert q1.gold_sources == [{"file": "ecg_basics.md", "page": None}]
    assert q1.tags == ["ecg", "seen"]
    assert q2.question == "Name a beta blocker."
    assert q2.references == ["bisoprolol", "metoprolol"]
    assert q2.gold_sources == [{"file": "heart_failure_guide.pdf", "page": 3}]  # the file name, without folders
    assert q2.tags == ["drugs"]
    assert (q3.id, q3.line, q3.references) == ("line3", 3, ["yes"])
    assert q3.gold_sources == [{"file": "lipids.txt", "page": None}]
    assert q1.to_dict()["references"] == ["Bazett's formula"]


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        ('{"question": "broken", ', "not valid JSON"),
        ({"id": "x", "reference": "r"}, "question"),
        ({"id": "x", "question": "   ", "reference": "r"}, "question"),
        ({"id": "x", "question": "q?", "reference": []}, "reference"),
        ({"id": "x", "question": "q?"}, "reference"),
        ({"id": "x", "question": "q?", "reference": ["ok", 3]}, "reference"),
        ({"id": "x", "question": "q?", "reference": "r", "gold_sources": [{"file": "a.pdf", "page": 0}]}, "page"),
        ({"id": "x", "question": "q?", "reference": "r", "gold_sources": [{"file": "a.pdf", "page": "3"}]}, "page"),
        ({"id": "x", "question": "q?", "reference": "r", "gold_sources": [{"file": "a.pdf", "page": True}]}, "page"),
        ({"id": "x", "question": "q?", "reference": "r", "gold_sources": [{"page": 2}]}, "file"),
        ({"id": "x", "question": "q?", "reference": "r", "tags": [1]}, "tags"),
        ('["a", "JSON", "array"]', "JSON object"),
        ({"id": "q1", "question": "again?", "reference": "r"}, "appears twice"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_and_the_rest_loads(tmp_path, bad_line, error):
    # Line 1 good, 2 blank (skipped silently), 3 bad, 4 good.
    path = _write(tmp_path, [GOOD[0], "   ", bad_line, GOOD[1]])
    evalset = load_eval_set(path)
    assert [it.id for it in evalset.items] == ["q1", "q2"]
    assert [it.line for it in evalset.items] == [1, 4]
    assert len(evalset.bad_rows) == 1
    assert evalset.bad_rows[0]["line"] == 3
    assert error in evalset.bad_rows[0]["error"]


def test_several_bad_rows_each_reported(tmp_path):
    path = _write(tmp_path, ["", "{oops", GOOD[0], "", "", "[]", GOOD[0], GOOD[2]])
    evalset = load_eval_set(path)
    assert [b["line"] for b in evalset.bad_rows] == [2, 6, 7]
    assert [it.id for it in evalset.items] == ["q1", "line8"]


def test_no_usable_row_is_refused(tmp_path):
    with pytest.raises(EvalSetError, match="no usable question"):
        load_eval_set(_write(tmp_path, ["{oops", {"question": "q?"}]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(EvalSetError, match="empty"):
        load_eval_set(empty)


def test_missing_or_unreadable_file_is_refused(tmp_path):
    with pytest.raises(EvalSetError, match="not found"):
        load_eval_set(tmp_path / "nope.jsonl")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"question": "caf\xe9?", "reference": "r"}\n'.encode("latin-1"))
    with pytest.raises(EvalSetError, match="Cannot read"):
        load_eval_set(latin1)


def test_select_by_tags_and_limit(tmp_path):
    evalset = load_eval_set(_write(tmp_path, GOOD))
    assert [it.id for it in evalset.select()] == ["q1", "q2", "line3"]
    assert [it.id for it in evalset.select(tags=["seen", "unseen"])] == ["q1", "line3"]
    assert [it.id for it in evalset.select(tags=["seen", "unseen"], limit=1)] == ["q1"]
    assert [it.id for it in evalset.select(limit=2)] == ["q1", "q2"]
    assert evalset.select(tags=["cardiology"]) == []


def _read_text(path):
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _squash(text):
    return " ".join(text.lower().split())


def test_shipped_demo_set_loads_and_points_at_the_corpus():
    evalset = load_eval_set(REPO_ROOT / "data" / "eval" / "demo_qa.jsonl")
    corpus = REPO_ROOT / "data" / "corpus"
    assert evalset.bad_rows == []
    assert len(evalset.items) >= 120
    assert len(evalset.select(tags=["unseen"])) >= 40
    checked = 0
    for item in evalset.items:
        assert item.gold_sources, item.id
        for gold in item.gold_sources:
            assert (corpus / gold["file"]).is_file(), (item.id, gold["file"])
        source = corpus / item.gold_sources[0]["file"]
        if source.suffix in (".md", ".txt"):
            assert _squash(item.references[0]) in _squash(_read_text(source)), (item.id, item.references[0])
            checked += 1
    assert checked > 0


def test_a_blank_reference_is_a_bad_row(tmp_path):
    # Scored against a blank reference, a failed (empty) answer would get exact-match credit.
    path = tmp_path / "blank.jsonl"
    path.write_text('{"question": "q?", "reference": ""}\n{"question": "q2?", "reference": ["ok", "  "]}\n'
                    '{"question": "q3?", "reference": "fine"}\n')  # fmt: skip
    loaded = load_eval_set(path)
    assert [b["line"] for b in loaded.bad_rows] == [1, 2] and "blank" in loaded.bad_rows[1]["error"]
    assert [i.question for i in loaded.items] == ["q3?"]
