"""Fixtures for the fine-tuning tests: the embedded Gemma 3 270M tokenizer and tiny datasets."""

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "finetune"


@pytest.fixture(scope="session")
def gemma_tokenizer():
    """The Gemma tokenizer with the chat template runs train with (loaded once: about a second)."""
    from core.finetune.model import training_tokenizer

    return training_tokenizer("gemma3-270m")


@pytest.fixture
def fixtures(tmp_path) -> Path:
    """A writable copy of the fixture datasets."""
    target = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, target)
    return target


def tiny_config(dataset: Path, **overrides):
    """A run small enough for a test: a few steps of batch 2, no samples unless asked."""
    from core.config import TrainConfig

    values = dict(dataset=str(dataset), max_steps=4, batch_size=2, save_steps=2, eval_steps=0, val_fraction=0.0,
                  n_samples=0, learning_rate=1e-3, lora_dropout=0.0, warmup_ratio=0.0)  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(autouse=True)
def stop_leftover_jobs():
    """A failed test must not leave a training job running (it would slow every later test)."""
    yield
    from core import jobs

    for status in jobs.list_jobs():
        if status.state == "running":
            jobs.cancel(status.id, grace_s=1.0)
