"""Saving uploads: safe names within the file system's byte limit, and never two uploads under one name."""

from pathlib import Path

import pytest

from core.uploads import MAX_NAME_BYTES, safe_name, save_upload


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        ("....", "unnamed"),
        (".hidden.txt", "hidden.txt"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("normal name (1).pdf", "normal name (1).pdf"),
    ],
)
def test_safe_name_strips_folders_and_control_characters(raw, expected):
    assert safe_name(raw) == expected


def test_safe_name_cuts_at_a_byte_budget_and_keeps_the_extension(tmp_path):
    for raw in ("é" * 200 + ".txt", "心" * 120 + ".md", "a" * 300 + ".pdf", "x" * 199 + "é.csv"):
        name = safe_name(raw)
        assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
        assert name.endswith(Path(raw).suffix) and name.startswith(raw[0])
        save_upload(tmp_path, raw, b"written")  # the file system accepts it (a 400-byte name would not)
    assert safe_name("é" * 200 + ".txt") == "é" * 98 + ".txt"  # 196 + 4 bytes, no character cut in half
    assert safe_name("Dr. Smith's notes") == "Dr. Smith's notes"  # a dot is not always an extension


def test_save_upload_never_overwrites_a_file_of_the_same_name(tmp_path):
    first = save_upload(tmp_path, "notes.txt", b"one")
    second = save_upload(tmp_path, "../elsewhere/notes.txt", b"two")
    third = save_upload(tmp_path, "notes.txt", b"three")
    assert [p.name for p in (first, second, third)] == ["notes.txt", "notes (2).txt", "notes (3).txt"]
    assert [p.read_bytes() for p in (first, second, third)] == [b"one", b"two", b"three"]
    assert save_upload(tmp_path, "....", b"x").name == "unnamed"
    assert save_upload(tmp_path, "", b"y").name == "unnamed (2)"
