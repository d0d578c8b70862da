"""Shared fixtures: a throwaway WORKBENCH_HOME per test, the embedded models prepared once by `make`, gpu skips."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The embedded models are prepared once by `make test` (workbench models prepare); tests reuse them read-only.
EMBEDDED_DIR = Path(os.environ.get("WORKBENCH_TEST_EMBEDDED_DIR", REPO_ROOT / "models" / "embedded"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def workbench_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_EMBEDDED_DIR", str(EMBEDDED_DIR))
    return home


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def embedder():
    """One real MiniLM embedder for the whole session (loading it takes a few seconds)."""
    os.environ["WORKBENCH_EMBEDDED_DIR"] = str(EMBEDDED_DIR)
    from core.rag.embed import Embedder

    return Embedder("all-minilm-l6-v2")
