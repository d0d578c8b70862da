"""Loaders: every supported format, and a clear LoadError for each kind of bad input."""

import builtins
import io
import json
import time
from pathlib import Path

import pytest

from core.config import IngestConfig
from core.rag.loaders import LoadError, LoadOptions, load_file, read_file
from tests.conftest import REPO_ROOT

CORPUS = REPO_ROOT / "data" / "corpus"


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_pdf_keeps_page_numbers():
    loaded = load_file(CORPUS / "ecg_interpretation_handbook.pdf")
    assert loaded.format == "pdf"
    assert [u.page for u in loaded.units] == list(range(1, 8))
    assert "PR interval" in loaded.units[2].text


def test_markdown_and_text_are_one_unit(tmp_path):
    loaded = load_file(write(tmp_path, "note.md", "# Title\n\nAtrial fibrillation is irregular."))
    assert loaded.format == "markdown" and loaded.units[0].text.startswith("# Title")
    assert loaded.units[0].page is None


def test_latin1_text_is_detected_not_assumed(tmp_path):
    path = write(tmp_path, "glossary.txt", "Ménière disease and café-au-lait spots; naïve; 37 °C".encode("latin-1"))
    loaded = load_file(path)
    assert "Ménière" in loaded.units[0].text and "naïve" in loaded.units[0].text and "°C" in loaded.units[0].text
    assert loaded.notes == ["decoded as cp1252"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("accent", ["Ménière", "Meniere"])
def test_utf16_text_with_and_without_bom(tmp_path, encoding, accent):
    text = f"Bradycardia is a heart rate below 60 beats per minute. {accent}.\n" * 20
    loaded = load_file(write(tmp_path, f"{encoding}.txt", text.encode(encoding)))
    assert loaded.units[0].text.strip() == text.strip()


def test_shipped_latin1_corpus_file():
    loaded = load_file(CORPUS / "cardiology_eponyms_glossary_latin1.txt")
    assert "Wenckebach" in loaded.units[0].text and "é" in loaded.units[0].text


def test_json_records_keep_other_fields_as_metadata(tmp_path):
    rows = [{"id": "a", "title": "Statins", "text": "Statins lower LDL cholesterol.", "category": "drug"}]
    loaded = load_file(write(tmp_path, "drugs.json", json.dumps(rows)))
    unit = loaded.units[0]
    assert unit.text == "Statins\nStatins lower LDL cholesterol."
    assert unit.record == 1 and unit.metadata == {"id": "a", "title": "Statins", "category": "drug"}


def test_jsonl_and_chosen_field(tmp_path):
    lines = "\n".join(json.dumps({"q": f"question {i}", "body": f"answer number {i}"}) for i in range(3))
    loaded = load_file(write(tmp_path, "qa.jsonl", lines), LoadOptions(text_field="body"))
    assert [u.text for u in loaded.units] == ["answer number 0", "answer number 1", "answer number 2"]
    assert loaded.units[2].record == 3 and loaded.units[0].metadata == {"q": "question 0"}


def test_csv_auto_column_with_title():
    loaded = load_file(CORPUS / "cardiology_terms.csv")
    assert loaded.format == "csv" and "chosen automatically: 'definition'" in loaded.notes[0]
    assert all(u.metadata.get("category") for u in loaded.units)


@pytest.mark.parametrize(
    "name, data, options, message",
    [
        ("empty.txt", b"", None, "empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, None, "binary"),
        ("broken.json", '[{"text": "ok"}, {"text": ', None, "Invalid JSON at line 1"),
        ("broken.jsonl", '{"text": "ok"}\n{"text": oops}\n', None, "Invalid JSON on line 2"),
        ("shape.json", '["just", "strings"]', None, "list of objects"),
        (
            "terms.csv",
            "term,definition\nAF,Irregular rhythm\n",
            LoadOptions(text_field="text"),
            "No column named 'text'",
        ),
        ("headeronly.csv", "term,definition\n", None, "no rows"),
        ("big.txt", "x" * 3000, LoadOptions(max_file_mb=0.001), "over the 0.001 MB limit"),
        ("report.docx", b"PK\x03\x04", None, "Unsupported file type '.docx'"),
        ("blank.md", "   \n\n ", None, "no text"),
        ("corrupt.pdf", b"%PDF-1.4\n1 0 obj garbage\n%%EOF", None, "corrupt"),
    ],
)
def test_bad_input_gets_a_clear_message(tmp_path, name, data, options, message):
    with pytest.raises(LoadError, match=message):
        load_file(write(tmp_path, name, data), options)


def test_encrypted_pdf_is_refused(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(CORPUS / "heart_failure_guide.pdf").pages[0])
    writer.encrypt("s3cret")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(LoadError, match="password"):
        load_file(path)


def test_image_only_pdf_is_refused(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    path = tmp_path / "scan.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(LoadError, match="no text layer"):
        load_file(path)


def test_short_latin1_and_cyrillic_cp1251_are_told_apart(tmp_path):
    short = load_file(write(tmp_path, "short.txt", "Ménière disease causes vertigo.".encode("latin-1")))
    assert short.units[0].text == "Ménière disease causes vertigo." and short.notes == ["decoded as cp1252"]
    russian = "Фибрилляция предсердий — это нарушение ритма сердца. " * 5
    loaded = load_file(write(tmp_path, "ru.txt", russian.encode("cp1251")))
    assert loaded.units[0].text.strip() == russian.strip()


def test_utf16_bom_with_an_odd_number_of_bytes_is_a_load_error(tmp_path):
    path = write(tmp_path, "odd.txt", "Sinus rhythm.".encode("utf-16") + b"x")  # BOM + 26 bytes + 1: odd
    with pytest.raises(LoadError, match="byte-order mark but is not valid UTF-16"):
        load_file(path)
    bad_utf8 = write(tmp_path, "sig.txt", b"\xef\xbb\xbfok \xff\xfe\xfd")
    with pytest.raises(LoadError, match="UTF-8 byte-order mark"):
        load_file(bad_utf8)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("deep.json", "[" * 100_000, "nested too deeply"),
        ("deep.jsonl", '{"text": "ok"}\n' + "[" * 100_000 + "\n", "Line 2 is nested too deeply"),
        # Parses (under the interpreter's limit) but could not be written back safely: refused the same way.
        ("deepish.json", json.dumps([{"text": "ok", "meta": json.loads("[" * 200 + "]" * 200)}]), "levels deep"),
    ],
)
def test_deeply_nested_json_is_a_load_error(tmp_path, name, data, message):
    with pytest.raises(LoadError, match=message):
        load_file(write(tmp_path, name, data))


@pytest.mark.parametrize(
    "name, data",
    [
        ("many.json", json.dumps([{"text": f"row {i}"} for i in range(4)])),
        ("many.jsonl", "\n".join(json.dumps({"text": f"row {i}"}) for i in range(4))),
        ("many.csv", "text\n" + "\n".join(f"row {i}" for i in range(4))),
    ],
)
def test_records_over_the_cap_are_refused(tmp_path, name, data):
    path = write(tmp_path, name, data)
    assert len(load_file(path, LoadOptions(max_records=4)).units) == 4
    with pytest.raises(LoadError, match="more than 3 records.*max_records"):
        load_file(path, LoadOptions(max_records=3))


def test_text_over_the_cap_is_refused(tmp_path):
    path = write(tmp_path, "long.txt", "Atrial fibrillation is irregular. " * 400)  # about 13,600 characters
    with pytest.raises(LoadError, match="max_text_mb"):
        load_file(path, LoadOptions(max_text_mb=0.01))  # 10,485 characters
    rows = [{"text": "Atrial fibrillation is irregular. " * 100} for _ in range(4)]
    with pytest.raises(LoadError, match="max_text_mb"):
        load_file(write(tmp_path, "long.json", json.dumps(rows)), LoadOptions(max_text_mb=0.01))


def test_pdf_page_and_text_caps():
    pdf = CORPUS / "ecg_interpretation_handbook.pdf"  # 7 pages
    with pytest.raises(LoadError, match="7 pages, over the limit of 6 .max_pdf_pages."):
        load_file(pdf, LoadOptions(max_pdf_pages=6))
    with pytest.raises(LoadError, match="max_text_mb"):
        load_file(pdf, LoadOptions(max_text_mb=0.001))
    assert len(load_file(pdf, LoadOptions(max_pdf_pages=7)).units) == 7


def test_load_options_come_from_the_ingest_config():
    config = IngestConfig(index="t", max_file_mb=2.0, max_pdf_pages=3, max_records=9, max_text_mb=1.5, text_field="b")
    assert LoadOptions.from_config(config) == LoadOptions("b", 2.0, 3, 9, 1.5)
    assert LoadOptions() == LoadOptions.from_config(IngestConfig(index="t"))  # one set of defaults


def test_a_sparse_file_over_the_limit_is_refused_without_being_read(tmp_path, monkeypatch):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GB that take no disk space
    opened = []
    real_open = builtins.open

    def watching_open(file, *args, **kwargs):
        if Path(str(file)).name == "huge.txt":
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(io, "open", watching_open)  # what Path.open / read_bytes call
    started = time.perf_counter()
    with pytest.raises(LoadError, match="3072.0 MB, over the 50 MB limit"):
        load_file(huge)
    with pytest.raises(LoadError, match="over the 50 MB limit"):
        read_file(huge, LoadOptions().max_file_mb)
    assert opened == [] and time.perf_counter() - started < 1.0


def test_read_file_hashes_in_one_pass(tmp_path):
    import hashlib

    data = bytes(range(256)) * 9000  # over two 1 MiB blocks
    path = write(tmp_path, "blob.txt", data)
    assert read_file(path, 10.0) == (data, hashlib.sha256(data).hexdigest())
