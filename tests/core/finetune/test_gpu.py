"""CUDA paths of fine-tuning (skipped without CUDA): bf16, 4-bit and 8-bit QLoRA, gradient checkpointing."""

from pathlib import Path

import pytest

from core.finetune import runs
from core.finetune.train import train
from core.jobs import Reporter
from tests.core.finetune.conftest import tiny_config

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize(
    "overrides",
    [
        {"precision": "bf16"},
        {"precision": "bf16", "gradient_checkpointing": True},
        {"quantization": "4bit", "gradient_checkpointing": True},
        {"quantization": "8bit"},
    ],
    ids=["bf16", "bf16-checkpointing", "4bit", "8bit"],
)
def test_cuda_training_paths_train_and_save_an_adapter(fixtures, overrides):
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=3, **overrides)
    run = runs.create_run(config)
    result = train({"run_dir": run.dir, "resume_from": None}, Reporter(Path(run.dir) / "attempt"))
    losses = [m["loss"] for m in runs.read_metrics(run.id) if m["kind"] == "train"]
    assert len(losses) == 3 and all(loss == loss and loss < 20 for loss in losses)  # finite, no fp16 overflow
    assert (Path(result["adapter"]) / "adapter_model.safetensors").is_file()
