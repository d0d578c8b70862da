"""`workbench ask --json` as scripts use it: the documented fields, and clear errors for bad input."""

import json
import subprocess
import sys

from core.config import IngestConfig
from core.rag.ingest import ingest
from tests.core.rag.conftest import DOCS

CLI = [sys.executable, "-m", "core.cli", "ask"]


def run(*args):
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_ask_json_has_the_documented_fields(tmp_path, embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest(IngestConfig(index="demo", paths=[str(tmp_path)]), embedder=embedder)
    code, out, err = run("What do statins lower?", "--index", "demo", "--max-new-tokens", "32", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert {"answer", "citations", "unsupported_sentences", "dropped_labels", "safety", "timings"} <= set(answer)
    assert {"retrieval_ms", "ttft_ms", "tokens_per_s"} <= set(answer["timings"])
    assert {"label", "chunk_id", "source", "page", "support", "attributed"} <= set(answer["citations"][0])
    assert answer["safety"]["input"]["action"] == "allow"


def test_ask_errors_are_clear_json():
    code, out, _ = run("What do statins lower?", "--index", "gone", "--json")
    assert code == 2 and "No index named 'gone'" in json.loads(out)["error"]
    code, out, _ = run("   ", "--no-index", "--json")
    assert code == 2 and "Type a question" in json.loads(out)["error"]
    code, out, _ = run("hi", "--no-index", "--model", "no-such-model", "--json")
    assert code == 2 and "No model named" in json.loads(out)["error"]
