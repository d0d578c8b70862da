"""Embedded models: preparation is idempotent, resumes what is missing, and verification catches tampering."""

import json
import os
import shutil
import time

from core.models import embedded
from tests.conftest import EMBEDDED_DIR


def test_prepare_is_idempotent_and_fast_when_ready():
    started = time.time()
    result = embedded.prepare()
    assert result["prepared"] == []
    assert time.time() - started < 5
    assert set(result["models"]) == {s.name for s in embedded.SPECS}


def test_prepare_reports_progress_up_to_one():
    seen = []
    embedded.prepare(progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_prepare_rebuilds_only_the_missing_gguf(tmp_path, monkeypatch):
    # A fresh embedded dir that already holds the (large) imported folder: only the GGUF is assembled again.
    target = tmp_path / "embedded"
    target.mkdir()
    os.symlink(EMBEDDED_DIR / embedded.GEMMA_HF, target / embedded.GEMMA_HF)
    manifest = json.loads((EMBEDDED_DIR / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({"gemma3-270m": manifest["gemma3-270m"]}))
    monkeypatch.setenv("WORKBENCH_EMBEDDED_DIR", str(target))
    assert {e.name: e.status for e in embedded.entries()}["gemma3-270m-gguf"] == "not_prepared"
    result = embedded.prepare()
    assert result["prepared"] == ["gemma3-270m-gguf"]
    assert all(e.status == "ready" for e in embedded.entries())
    assert embedded.verify("gemma3-270m-gguf").status == "ready"


def test_verify_detects_a_modified_file(tmp_path, monkeypatch):
    target = tmp_path / "embedded"
    target.mkdir()
    shutil.copy(EMBEDDED_DIR / embedded.GEMMA_GGUF, target / embedded.GEMMA_GGUF)
    manifest = json.loads((EMBEDDED_DIR / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({"gemma3-270m-gguf": manifest["gemma3-270m-gguf"]}))
    monkeypatch.setenv("WORKBENCH_EMBEDDED_DIR", str(target))
    assert embedded.verify("gemma3-270m-gguf").status == "ready"
    with open(target / embedded.GEMMA_GGUF, "r+b") as handle:  # same size, one byte flipped in the weights
        handle.seek(-10, 2)
        byte = handle.read(1)
        handle.seek(-10, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    checked = embedded.verify("gemma3-270m-gguf")
    assert checked.status == "invalid" and "sha256 mismatch" in checked.detail
