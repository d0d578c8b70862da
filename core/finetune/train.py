"""The fine-tuning job: ``python -m core.finetune.train CONFIG.json`` (also under ``accelerate launch``).

CONFIG is either a job config written by :func:`core.finetune.runs.start` (``{"run_dir", "resume_from"}``) or a
run's own ``config.json`` (a TrainConfig), which trains in that run folder.
"""

import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from pathlib import Path

from core import jobs
from core.config import TrainConfig
from core.fileio import atomic_write_json, read_json
from core.finetune import dataset as datasets_
from core.finetune import model as model_
from core.finetune.runs import list_checkpoints
from core.finetune.template import end_of_turn_ids, render, template_source
from core.runfolder import RunFolder, now_iso, sha256_file, tool_versions

logger = logging.getLogger(__name__)

RATE_WINDOW = 10  # steps over which the live tokens/s and ETA are measured


class _Quiet:
    """Reporter stand-in for the ranks other than 0 under ``accelerate launch``."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Stop:
    """SIGTERM while training: finish the step, save a checkpoint, stop; before training: stop at once."""

    def __init__(self):
        self.training = False
        self.requested = False

    def __call__(self, signum, frame):
        if not self.training:
            raise jobs.JobCancelled()
        self.requested = True


def train(job_config: dict, reporter: jobs.Reporter, config_path: Path | None = None) -> dict:
    """Run one fine-tuning attempt of a run (new or resumed) and save its adapter.

    Args:
        job_config: ``{"run_dir": ..., "resume_from": ...}``, or a TrainConfig dict (trained in ``config_path``'s
            folder).
        reporter: Where progress and artifacts go (metrics go to the run's ``metrics.jsonl``, once).
        config_path: The file ``job_config`` came from (for a TrainConfig given directly).

    Returns:
        The result: adapter folder, steps, losses, trained tokens/s.

    Raises:
        jobs.JobCancelled: When cancelled (after saving a checkpoint if training had started).
    """
    if "run_dir" in job_config:
        run_dir, resume_from = Path(job_config["run_dir"]), job_config.get("resume_from")
    else:
        run_dir, resume_from = Path(config_path or ".").resolve().parent, None
    config = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    main = int(os.environ.get("RANK", "0")) == 0
    reporter = reporter if main else _Quiet()
    stop = _Stop()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return _train(config, run_dir, resume_from, reporter, stop, main)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(config: TrainConfig, run_dir: Path, resume_from: str | None, reporter, stop: _Stop, main: bool) -> dict:
    reporter.progress(0.0, "Loading tokenizer and dataset")
    base_path = model_.resolve_base(config.base_model)
    tokenizer = model_.training_tokenizer(config.base_model)
    data = datasets_.prepare(config, tokenizer)
    if main:
        atomic_write_json(run_dir / "dataset_report.json", data.report.to_dict())
    reporter.progress(0.02, f"{data.report.n_train} training and {data.report.n_val} validation examples; "
                            f"{data.report.n_errors} rows left out. Loading {config.base_model}")  # fmt: skip

    trainer = _build_trainer(config, base_path, tokenizer, data, run_dir, reporter, stop)
    stop.training = True
    started = time.time()
    output = trainer.train(resume_from_checkpoint=resume_from)
    stop.training = False
    if stop.requested:
        if main:
            last = list_checkpoints(run_dir)
            RunFolder.at(run_dir, "finetune").update_manifest(
                cancelled_at_step=trainer.state.global_step, last_checkpoint=last[-1].path if last else None
            )
        raise jobs.JobCancelled()

    eval_loss = None
    if data.val:
        last = [h for h in trainer.state.log_history if "eval_loss" in h]
        if last and last[-1].get("step") == trainer.state.global_step:  # the periodic evaluation just ran
            eval_loss = last[-1]["eval_loss"]
        else:
            reporter.progress(0.96, "Validation loss")
            eval_loss = trainer.evaluate()["eval_loss"]
    result = {
        "run_dir": str(run_dir),
        "steps": trainer.state.global_step,
        "train_loss": output.training_loss,
        "eval_loss": eval_loss,
        "trained_tokens": trainer.trained_tokens,
        "train_seconds": time.time() - started,
        "tokens_per_s": trainer.trained_tokens / max(time.time() - started, 1e-9),
        "template": template_source(tokenizer),
    }
    if not main:
        return result
    reporter.progress(0.97, "Saving the adapter")
    result["adapter"] = str(_save_adapter(trainer, tokenizer, config, base_path, run_dir, data.report, result))
    reporter.artifact(result["adapter"], kind="adapter")
    if config.n_samples:
        reporter.progress(0.98, "Answering sample prompts with the base and the tuned model")
        prompts = [[{"role": "user", "content": p}] for p in config.sample_prompts] or data.sample_prompts
        samples = generate_samples(trainer.model, tokenizer, prompts[: config.n_samples], config.sample_max_new_tokens)
        atomic_write_json(run_dir / "samples.json", samples)
    RunFolder.at(run_dir, "finetune").update_manifest(finished=True, result=result)
    return result


def _build_trainer(config, base_path, tokenizer, data, run_dir, reporter, stop):
    import torch
    from datasets import Dataset
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import TrainerCallback, set_seed
    from trl import SFTConfig
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.finetune.trainer import WorkbenchTrainer

    set_seed(config.seed)  # the LoRA initialisation and the shuffling follow the seed
    model = model_.load_model(base_path, config)
    model_.check_targets(model, config.target_modules)
    if config.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    model = get_peft_model(model, model_.lora_config(config))
    bf16 = model_.compute_dtype(config) == torch.bfloat16
    has_val = bool(data.val)
    args = SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps or -1,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=1,
        eval_strategy="steps" if has_val and config.eval_steps else "no",
        eval_steps=config.eval_steps or None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to="none",
        disable_tqdm=True,
        max_length=None,  # examples are already cut to config.max_length (and reported)
        dataset_kwargs={"skip_prepare_dataset": True},
        prediction_loss_only=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )

    def to_dataset(examples):
        columns = {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
        return Dataset.from_dict(columns)

    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=config.padding_free)
    trainer = WorkbenchTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(data.train),
        eval_dataset=to_dataset(data.val) if has_val else None,
        processing_class=tokenizer,
        data_collator=collator,
        fused_loss=config.fused_loss,
    )

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            # Speed and ETA over the last few steps: the first step (allocations, warm-up) is much slower.
            self.window = deque([(time.time(), state.global_step, trainer.trained_tokens)], maxlen=RATE_WINDOW + 1)

        def on_step_end(self, args, state, control, **kwargs):
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            step = state.global_step
            if "eval_loss" in logs:
                _log_metric(run_dir, {"kind": "eval", "step": step, "eval_loss": logs["eval_loss"]})
            if "loss" not in logs:
                return
            self.window.append((time.time(), step, trainer.trained_tokens))
            (t0, step0, tokens0), (t1, _, tokens1) = self.window[0], self.window[-1]
            tokens_per_s = (tokens1 - tokens0) / max(t1 - t0, 1e-9)
            eta_s = (state.max_steps - step) * (t1 - t0) / max(step - step0, 1)
            record = {"kind": "train", "step": step, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                      "grad_norm": logs.get("grad_norm"), "epoch": logs.get("epoch"), "tokens_per_s": tokens_per_s,
                      "trained_tokens": trainer.trained_tokens, "eta_s": eta_s}  # fmt: skip
            _log_metric(run_dir, record)
            reporter.progress(0.03 + 0.93 * step / max(state.max_steps, 1),
                              f"step {step}/{state.max_steps} · loss {logs['loss']:.3f} · {tokens_per_s:.0f} tok/s"
                              f" · ETA {eta_s / 60:.1f} min")  # fmt: skip

        def on_save(self, args, state, control, **kwargs):
            path = run_dir / "checkpoints" / f"checkpoint-{state.global_step}"
            reporter.artifact(path, kind="checkpoint", step=state.global_step)

    trainer.add_callback(Progress())
    return trainer


def _log_metric(run_dir: Path, record: dict) -> None:
    # Once, in the run's own log: the job's progress.jsonl carries progress only, and `workbench train` and the
    # page read the curves from here. The job id tells one attempt of a resumed run from the others.
    if int(os.environ.get("RANK", "0")) != 0:
        return
    job_id = os.environ.get("WORKBENCH_JOB_ID")
    RunFolder.at(run_dir, "finetune").append_metric({**record, "attempt": os.getpid(), "job_id": job_id})


def _save_adapter(
    trainer, tokenizer, config: TrainConfig, base_path: Path, run_dir: Path, report, result: dict
) -> Path:
    """Write the adapter into a temporary folder and rename it into place: never a half-written ``adapter/``."""
    final, partial = run_dir / "adapter", run_dir / f".adapter-partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        trainer.model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)  # with the chat template the adapter was trained on
        atomic_write_json(partial / "train_config.json", config.to_dict())
        weights = partial / "adapter_model.safetensors"
        atomic_write_json(partial / "manifest.json", {
            "kind": "lora_adapter", "created_at": now_iso(), "base_model": config.base_model,
            "base_path": str(base_path), "dataset": report.path, "dataset_sha256": report.sha256,
            "adapter_sha256": sha256_file(weights), "result": result, "versions": tool_versions(),
        })  # fmt: skip
        if final.exists():
            old = run_dir / f".adapter-old-{os.getpid()}"
            final.rename(old)
            shutil.rmtree(old)
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def generate_samples(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int) -> list[dict]:
    """Answer each prompt greedily with the adapter off (base) and on (tuned).

    Returns:
        ``[{"prompt", "base", "tuned", "base_stopped", "tuned_stopped"}]``: the ``*_stopped`` flags say whether the
        model closed its turn itself before ``max_new_tokens``.
    """
    import torch

    model.eval()
    stops = end_of_turn_ids(tokenizer)
    device = next(model.parameters()).device
    samples = []
    for messages in prompts:
        text = render(tokenizer, messages, add_generation_prompt=True)
        inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
        answers = {}
        for name in ("base", "tuned"):
            with torch.inference_mode():
                if name == "base":
                    with model.disable_adapter():
                        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                             eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
                else:
                    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                         eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            new = out[0, inputs["input_ids"].shape[1] :].tolist()
            answers[name] = tokenizer.decode(new, skip_special_tokens=True).strip()
            answers[f"{name}_stopped"] = bool(new) and new[-1] in stops
        samples.append({"prompt": messages[-1]["content"], **answers})
    return samples


def _main() -> None:
    config_path = Path(sys.argv[1]).resolve() if len(sys.argv) == 2 else None
    jobs.run_child(lambda config, reporter: train(config, reporter, config_path))


if __name__ == "__main__":
    _main()
