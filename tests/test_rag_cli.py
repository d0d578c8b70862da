"""`workbench ingest`, `search` and `index` as scripts use them (--json output, exit codes, per-file errors)."""

import json
import subprocess
import sys
import time

from core.cli import build_parser, main
from core.config import IngestConfig, ReindexConfig
from core.rag import index as store
from core.rag.ingest import ingest
from tests.conftest import REPO_ROOT
from tests.core.rag.conftest import DOCS
from tests.core.rag.test_ingest import _hostile_folder

CLI = [sys.executable, "-m", "core.cli"]


def run(*args):
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_ingest_search_and_manage_from_the_command_line(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / "latin1.txt").write_bytes("Ménière disease causes vertigo.".encode("latin-1"))
    (folder / "empty.csv").write_bytes(b"")
    code, out, err = run("ingest", str(folder), "--index", "cli", "--json")
    assert code == 4, err  # done, but a file had an error
    report = json.loads(out)
    by_source = {f["source"]: f for f in report["files"]}
    assert by_source["empty.csv"]["status"] == "error" and "empty" in by_source["empty.csv"]["message"]
    assert by_source["latin1.txt"]["status"] == "added" and by_source["latin1.txt"]["notes"] == ["decoded as cp1252"]
    assert report["total_files"] == 4

    code, out, _ = run("search", "peaked T waves and a wide QRS", "--index", "cli", "-k", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2
    assert {"chunk_id", "source", "page", "start", "end", "score", "text"} <= set(hits[0])
    assert hits[0]["source"] == "potassium.md"

    code, out, _ = run("ingest", str(folder / "statins.txt"), "--index", "cli", "--json")
    assert code == 0 and json.loads(out)["files"][0]["status"] == "unchanged"

    code, out, _ = run("index", "show", "cli", "--json")
    assert code == 0 and len(json.loads(out)["files"]) == 4
    code, out, _ = run("index", "delete-doc", "cli", "statins.txt", "--json")
    assert code == 0 and json.loads(out)["chunks_removed"] >= 1
    code, out, _ = run("index", "delete", "cli", "--json")
    assert code == 0
    code, out, _ = run("search", "anything", "--index", "cli", "--json")
    assert code == 2 and "No index named 'cli'" in json.loads(out)["error"]


def test_ingest_with_a_bad_index_name_is_a_clear_error(tmp_path):
    code, out, _ = run("ingest", str(tmp_path), "--index", "../escape", "--json")
    assert code == 2 and "Invalid index name" in json.loads(out)["error"]


def test_hostile_files_are_each_an_error_and_the_good_file_is_ingested(tmp_path):
    folder = _hostile_folder(tmp_path)
    started = time.perf_counter()
    code, out, err = run("ingest", str(folder), "--index", "cli", "--max-records", "5", "--json")
    assert code == 4, err  # the documented "done, but some files had errors"
    assert "Traceback" not in out + err
    statuses = {f["source"]: (f["status"], f["message"]) for f in json.loads(out)["files"]}
    assert statuses.pop("good.md")[0] == "added"
    assert {source: status for source, (status, _) in statuses.items()} == dict.fromkeys(statuses, "error")
    assert "over the 50 MB limit" in statuses["huge.txt"][1] and "nested too deeply" in statuses["deep.json"][1]
    assert time.perf_counter() - started < 120  # the 3 GB file was not read (it would take minutes, twice)


def test_an_unknown_library_failure_shows_no_traceback(tmp_path, capsys, monkeypatch):
    from pypdf import PageObject

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(PageObject, "extract_text", broken)
    pdf = REPO_ROOT / "data" / "corpus" / "heart_failure_guide.pdf"
    (tmp_path / "weird.pdf").write_bytes(pdf.read_bytes())
    (tmp_path / "good.md").write_text("Pericarditis causes pleuritic chest pain.")
    assert main(["ingest", str(tmp_path), "--index", "cli"]) == 4
    out, err = capsys.readouterr()
    assert "error     weird.pdf  — Could not read this file (ZeroDivisionError: float division by zero)" in out
    assert "added     good.md" in out and "1 files with errors" in out
    assert "Traceback" not in out + err


def test_ingest_flags_keep_their_names_and_take_the_config_defaults():
    args = build_parser().parse_args(["ingest", "docs", "--index", "i"])
    for name in ("embedding_model", "chunk_tokens", "overlap_tokens", "text_field", "max_file_mb", "max_pdf_pages",
                 "max_records", "max_text_mb", "batch_size"):  # fmt: skip
        assert getattr(args, name) == IngestConfig.spec(name).default, name
    flags = "--embedding-model m --chunk-tokens 64 --overlap-tokens 8 --text-field body --max-file-mb 2.5".split()
    args = build_parser().parse_args(["ingest", "d", "--index", "i", *flags])
    assert (args.embedding_model, args.chunk_tokens, args.overlap_tokens, args.text_field, args.max_file_mb) == (
        "m", 64, 8, "body", 2.5)  # fmt: skip
    args = build_parser().parse_args(["index", "reindex", "i"])
    assert (args.embedding_model, args.chunk_tokens, args.overlap_tokens) == (None, None, None)
    assert ReindexConfig(name="i", chunk_tokens=args.chunk_tokens).chunking({"chunk_tokens": 90, "overlap_tokens": 9})


def test_reindex_refuses_an_overlap_larger_than_the_chunks(tmp_path, embedder, capsys):
    (tmp_path / "a.md").write_text("Atrial flutter shows sawtooth waves in the inferior leads.")
    ingest(IngestConfig(index="cli", paths=[str(tmp_path)]), embedder=embedder)
    generation = store.read_manifest("cli")["generation"]
    assert main(["index", "reindex", "cli", "--overlap-tokens", "250"]) == 2  # the index's chunks are 200 tokens
    assert "error: overlap_tokens must be at most half of chunk_tokens (100 for chunk_tokens 200; got 250)" in (
        capsys.readouterr().err)  # fmt: skip
    assert main(["index", "reindex", "cli", "--chunk-tokens", "8", "--json"]) == 2
    assert "chunk_tokens must be between 16 and 8192 (got 8)" in json.loads(capsys.readouterr().out)["error"]
    assert store.read_manifest("cli")["generation"] == generation
