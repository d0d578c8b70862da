"""Fixtures for the evaluation tests: a two-document index named demo and a small eval set on it."""

import json
import shutil

import pytest

from tests.conftest import REPO_ROOT

CORPUS = REPO_ROOT / "data" / "corpus"
QUESTIONS = [
    {"id": "q1", "question": "Which formula corrects the QT interval by dividing it by the square root of the RR "
     "interval?", "reference": ["Bazett's formula"], "gold_sources": [{"file": "ecg_basics.md"}],
     "tags": ["ecg"]},
    {"id": "q2", "question": "How long must atrial fibrillation last before it is classified as persistent?",
     "reference": ["longer than 7 days", "more than seven days"], "gold_sources": [{"file": "atrial_fibrillation.md"}],
     "tags": ["arrhythmia"]},
    {"id": "q3", "question": "What is the cornerstone of catheter ablation for atrial fibrillation?",
     "reference": ["pulmonary vein isolation"], "gold_sources": [{"file": "atrial_fibrillation.md"}],
     "tags": ["arrhythmia"]},
]  # fmt: skip


@pytest.fixture
def demo_index(tmp_path, embedder):
    """Index 'demo' over two documents of the demo corpus."""
    from core.config import IngestConfig
    from core.rag.ingest import ingest

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("ecg_basics.md", "atrial_fibrillation.md"):
        shutil.copy(CORPUS / name, folder / name)
    ingest(IngestConfig(index="demo", paths=[str(folder)]), embedder=embedder)
    return "demo"


def write_set(path, rows, extra_lines=()):
    """Write an eval set: rows as JSON lines, then any raw extra lines."""
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def eval_set(tmp_path):
    """The three questions as a JSONL file."""
    return write_set(tmp_path / "set.jsonl", QUESTIONS)
