"""The user's labelled examples: adding, importing hostile files, concurrent writers, and the shipped splits."""

import json
import subprocess
import sys

import pytest

from core.errors import WorkbenchError
from core.safety import examples


def test_add_list_relabel_and_remove():
    result = examples.add_examples([{"text": "my dad collapsed", "label": "emergency"}], "test")
    assert result == {"added": 1, "relabelled": 0, "total": 1}
    # The same text, folded (case, spacing, a look-alike letter), relabelled: the newest label wins.
    result = examples.add_examples([{"text": "My  dad cоllapsed", "label": "informational"}], "test")
    assert result == {"added": 0, "relabelled": 1, "total": 1}
    rows = examples.user_examples()
    assert [r["label"] for r in rows] == ["informational"] and rows[0]["writer"] == "user"
    assert examples.remove_example(rows[0]["id"]) and examples.user_examples() == []
    assert not examples.remove_example("nope")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.jsonl", b"\xff\xfe\x00binary", "not UTF-8"),
        ("x.jsonl", b'{"text": "a", "label": "urgent"}\n', "'label' must be one of"),
        ("x.jsonl", b'{"text": "", "label": "emergency"}\n', "non-empty"),
        ("x.jsonl", json.dumps({"text": "a" * 9000, "label": "emergency"}).encode(), "limit"),
        ("x.jsonl", b"[1, 2]\n", "must be an object"),
        ("x.jsonl", b"{broken\n", "not JSON"),
        ("x.csv", b"prompt,category\nhi,emergency\n", "'text' and 'label' columns"),
        ("x.txt", b"hello", "use a .jsonl or .csv"),
        ("x.jsonl", b"\n\n", "no rows"),
    ],
)
def test_a_hostile_upload_is_refused_with_a_message_and_adds_nothing(name, data, message):
    examples.add_examples([{"text": "kept", "label": "informational"}], "test")
    with pytest.raises(WorkbenchError, match=message):
        examples.add_examples(examples.parse_upload(name, data), name)
    assert [r["text"] for r in examples.user_examples()] == ["kept"]


def test_a_bad_row_in_a_batch_adds_none_of_it():
    with pytest.raises(WorkbenchError):
        examples.add_examples([{"text": "fine", "label": "emergency"}, {"text": "bad", "label": "?"}], "test")
    assert examples.user_examples() == []


def test_csv_import_keeps_text_label_and_note():
    rows = examples.parse_upload("x.csv", b'text,label,note,extra\n"no chest pain, just asking",informational,n,z\n')
    assert rows == [{"text": "no chest pain, just asking", "label": "informational", "note": "n"}]


ADD_MANY = """
import sys
from core.safety import examples
worker = int(sys.argv[1])
for i in range(15):
    examples.add_examples([{"text": f"prompt {worker}-{i}", "label": "informational"}], f"proc {worker}")
"""


def test_processes_adding_at_once_lose_nothing():
    procs = [subprocess.Popen([sys.executable, "-c", ADD_MANY, str(w)]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    rows = examples.user_examples()
    assert len(rows) == 60 and len({r["text"] for r in rows}) == 60


def test_shipped_splits_are_split_by_writer_and_large_enough():
    splits = {s: examples.load_split(s) for s in examples.SPLITS}
    writers = {s: {r["writer"] for r in rows} for s, rows in splits.items()}
    assert not writers["train"] & writers["dev"] and not writers["train"] & writers["test"]
    assert not writers["dev"] & writers["test"]
    assert sum(len(rows) for rows in splits.values()) >= 1500
    for label in ("emergency", "personal_advice", "informational"):
        assert sum(r["label"] == label for r in splits["test"]) >= 150
    keys = {s: {examples.key(r["text"]) for r in rows} for s, rows in splits.items()}
    assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"] and not keys["dev"] & keys["test"]
