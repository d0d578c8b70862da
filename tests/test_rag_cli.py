"""`workbench ingest`, `search` and `index` as scripts use them (--json output, exit codes, per-file errors)."""

import json
import subprocess
import sys

from tests.core.rag.conftest import DOCS

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
