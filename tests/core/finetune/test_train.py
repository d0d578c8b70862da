"""Training on the embedded Gemma 3 270M: loss falls, LoRA changes and reloads, resume is exact, failures are clean."""

import errno
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core import jobs
from core.fileio import read_jsonl
from core.finetune import runs
from core.finetune.model import BaseModelError
from core.finetune.train import train
from core.jobs import Reporter
from tests.core.finetune.conftest import tiny_config
from tests.core.test_jobs import wait_until

pytestmark = pytest.mark.slow


def weights_bytes(adapter: Path) -> bytes:
    return (adapter / "adapter_model.safetensors").read_bytes()


def run_in_process(config, resume_from=None, run=None):
    run = run or runs.create_run(config)
    result = train({"run_dir": run.dir, "resume_from": resume_from}, Reporter(Path(run.dir) / "attempt"))
    return run, result


def train_losses(run_id):
    return {m["step"]: m["loss"] for m in runs.read_metrics(run_id) if m["kind"] == "train"}


def fixed_set_loss(model, data, tokenizer):
    total, count = 0.0, 0
    with torch.no_grad():
        for example in data.train:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor([example.labels])
            out = model(input_ids=ids, labels=labels)
            n = int((labels[:, 1:] != -100).sum())
            total, count = total + out.loss.item() * n, count + n
    return total / count


def test_few_steps_reduce_loss_change_lora_and_adapter_reloads(fixtures, gemma_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.finetune.dataset import prepare
    from core.finetune.model import resolve_base

    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=6, batch_size=4, n_samples=1,
                         sample_max_new_tokens=8)  # fmt: skip
    run, result = run_in_process(config)
    adapter = Path(result["adapter"])
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json", "train_config.json"} <= {
        p.name for p in adapter.iterdir()
    }
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(torch.count_nonzero(t) > 0 for t in lora_b)  # PEFT starts B at zero: it was trained

    base = AutoModelForCausalLM.from_pretrained(resolve_base("gemma3-270m"), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
    data = prepare(config, gemma_tokenizer)
    with tuned.disable_adapter():
        before = fixed_set_loss(tuned, data, gemma_tokenizer)
    after = fixed_set_loss(tuned, data, gemma_tokenizer)
    assert after < before - 0.3, (before, after)
    losses = train_losses(run.id)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6] and losses[6] < losses[1]
    events = read_jsonl(Path(run.dir) / "attempt" / "progress.jsonl")
    assert events and not [e for e in events if e["type"] == "metric"]  # logged once: in the run's metrics.jsonl
    manifest = json.loads((Path(run.dir) / "manifest.json").read_text())
    assert manifest["finished"] and manifest["result"]["steps"] == 6 and manifest["kind"] == "finetune"
    adapter_manifest = json.loads((adapter / "manifest.json").read_text())
    assert adapter_manifest["created_at"].endswith("+00:00") and adapter_manifest["versions"]["peft"]
    assert adapter_manifest["adapter_sha256"] == hashlib.sha256(weights_bytes(adapter)).hexdigest()
    samples = runs.read_samples(run.id)
    assert len(samples) == 1 and {"prompt", "base", "tuned", "base_stopped", "tuned_stopped"} <= set(samples[0])
    assert runs.get_run(run.id).adapter == str(adapter) and [r.id for r in runs.list_adapters()] == [run.id]

    from core.llm.backends import load_generator

    chat = load_generator("gemma3-270m", adapter=adapter)  # the chat backend uses the adapter's chat template
    prompt = chat.render([{"role": "user", "content": "Hi"}])
    assert chat.has_chat_template and prompt.endswith("<start_of_turn>model\n")


def test_resume_continues_from_the_saved_step_exactly(fixtures):
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=4, save_steps=2)
    run, _ = run_in_process(config)
    uninterrupted = train_losses(run.id)
    checkpoint = runs.resolve_checkpoint(runs.get_run(run.id), "2")
    _, resumed = run_in_process(config, resume_from=checkpoint, run=run)
    attempts = {}
    for m in runs.read_metrics(run.id):
        attempts[m["step"]] = m
    assert resumed["steps"] == 4
    # Optimizer, schedule and data order come back from the checkpoint: steps 3 and 4 are reproduced.
    assert train_losses(run.id)[3] == pytest.approx(uninterrupted[3], rel=1e-5)
    assert train_losses(run.id)[4] == pytest.approx(uninterrupted[4], rel=1e-5)
    files = {p.name for p in Path(checkpoint).iterdir()}
    assert {"optimizer.safetensors", "optimizer.json", "rng_state_0.json", "trainer_state.json"} <= files
    assert not {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"} & files  # no pickle


def test_fused_loss_equals_trls_loss(fixtures):
    losses = []
    for fused, padding_free in ((True, True), (False, True), (False, False)):
        config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=1, fused_loss=fused,
                             padding_free=padding_free, save_steps=10)  # fmt: skip
        run, _ = run_in_process(config)
        losses.append(train_losses(run.id)[1])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4) and losses[0] == pytest.approx(losses[2], rel=1e-4)


def test_disk_full_while_saving_leaves_no_adapter(fixtures, monkeypatch):
    import core.finetune.train as train_module

    real = train_module.atomic_write_json

    def full_disk(path, obj):
        if Path(path).name == "train_config.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(train_module, "atomic_write_json", full_disk)
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=1)
    run = runs.create_run(config)
    with pytest.raises(OSError, match="No space left"):
        run_in_process(config, run=run)
    leftovers = [p.name for p in Path(run.dir).iterdir() if p.name.startswith((".adapter", "adapter"))]
    assert leftovers == [] and runs.list_adapters() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_model": "/no/such/model"}, "Base model not found"),
        ({"quantization": "4bit"}, "needs a CUDA GPU"),
        ({"target_modules": ["q_proj", "qkv"]}, "Unknown LoRA target modules: qkv"),
    ],
)
def test_bad_base_model_settings_fail_clearly(fixtures, overrides, message):
    if "quantization" in overrides and torch.cuda.is_available():
        pytest.skip("CUDA present")
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", **overrides)
    with pytest.raises(BaseModelError, match=message):
        run_in_process(config)


def wait_for(predicate):
    return wait_until(predicate, timeout_s=300)


def test_job_cancel_saves_a_checkpoint_and_resume_finishes(fixtures):
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=30, save_steps=1000)
    run = runs.create_run(config)
    runs.start(run.id)
    other = runs.create_run(config)
    with pytest.raises(runs.RunError, match="is training; wait for it or cancel it first"):
        runs.start(other.id)  # one training at a time
    wait_for(lambda: len(train_losses(run.id)) >= 2)
    cancelled = runs.cancel(run.id)
    assert cancelled.state == "cancelled" and cancelled.adapter is None
    step = cancelled.checkpoints[-1].step
    assert step >= 2
    second_job = runs.start(run.id, resume_from="last")
    finished = wait_for(lambda: (r := runs.get_run(run.id)).state in ("finished", "failed") and r)
    assert finished.state == "finished", finished.error
    assert sorted(train_losses(run.id)) == list(range(1, 31)) and finished.result["steps"] == 30
    # Each metric once, in the run's log, tagged with the job that logged it; the jobs keep progress only.
    assert {m["job_id"] for m in runs.metrics_log(run.id)} == set(finished.job_ids)
    assert finished.job_ids[-1] == second_job and jobs.status(second_job).metrics == []


def test_killed_job_is_failed_without_adapter_and_keeps_complete_checkpoints(fixtures):
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=200, save_steps=1)
    run = runs.create_run(config)
    job_id = runs.start(run.id)
    wait_for(lambda: len(runs.get_run(run.id).checkpoints) >= 2)
    os.killpg(jobs.status(job_id).pid, signal.SIGKILL)
    failed = wait_for(lambda: (r := runs.get_run(run.id)).state != "running" and r)
    assert failed.state == "failed" and failed.adapter is None
    assert "ended without reporting a result" in failed.error
    for checkpoint in failed.checkpoints:
        assert (Path(checkpoint.path) / "adapter_model.safetensors").stat().st_size > 0
