"""Fine-tuning benchmark: our LoRA training vs TRL's SFTTrainer (defaults, and tuned for CPU), same data and steps.

All three train Gemma 3 270M (the embedded fp32 folder) with LoRA r=8, alpha 16, dropout 0.05 on every attention
and MLP projection, batch 4, learning rate 2e-4 (constant, so that the first steps of a long run are a short run),
seed 42, on the same tokenized examples: data/finetune/medqa_demo.jsonl through our dataset code (Gemma chat
template, prompt tokens masked with -100, every example ends with its trained <end_of_turn>), max length 256.
The trainers draw the same batches (the Trainer's seeded sampler over the same dataset order).

- ours: ``core.finetune.train.train`` as the Fine-tune page runs it (a run folder, checkpoints off for the
  measured span, no samples): TRL's trainer with the loss projected only at labelled positions (fused, chunked),
  padding-free batches, no per-step metrics over the vocabulary.
- trl_tuned: ``SFTTrainer`` + ``SFTConfig(bf16=False, gradient_checkpointing=False)``: what a careful CPU user sets.
- trl_default: ``SFTTrainer`` + ``SFTConfig`` defaults (plus ``use_cpu=True``, without which they refuse to start
  on a machine without a GPU), which on CPU keep bf16 and gradient checkpointing on.
Baselines get the model path and a ``peft_config``, as TRL's documentation shows; both log every step.

Each variant runs in its own process (so that peak memory, VmHWM, is its own). Trained tokens are the non-padding
input tokens of each step (TRL's ``num_tokens``); the rate is measured from the end of step 1 to the end of step N
(step 1 carries one-time allocations) and also over the steps every variant ran. ours and trl_tuned run
``--curve-steps`` steps for the loss comparison; trl_default runs ``--steps`` steps (about a minute each).
After training, every variant's model computes the validation loss (25 held-out examples) with the same code.

Prints one JSON object on stdout; progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATASET = REPO / "data" / "finetune" / "medqa_demo.jsonl"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHARED = {"lr": 2e-4, "batch": 4, "max_length": 256, "r": 8, "alpha": 16, "dropout": 0.05, "seed": 42}


def log(message: str) -> None:
    sys.stderr.write(f"[finetune-bench] {message}\n")
    sys.stderr.flush()


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepared():
    from core.config import TrainConfig
    from core.finetune.dataset import prepare
    from core.finetune.model import training_tokenizer

    # The same split as the run of `child_ours` (val_fraction 0.1, seeded by the run's seed).
    config = TrainConfig(dataset=str(DATASET), max_length=SHARED["max_length"], val_fraction=0.1, seed=SHARED["seed"])
    tokenizer = training_tokenizer("gemma3-270m")
    return prepare(config, tokenizer), tokenizer


def validation_loss(model, examples) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            labels = torch.tensor([example.labels])
            out = model(input_ids=torch.tensor([example.input_ids]), labels=labels)
            n = int((labels[:, 1:] != -100).sum())
            total, count = total + out.loss.float().item() * n, count + n
    return total / count


def child_ours(steps: int, home: Path) -> dict:
    from core.config import TrainConfig
    from core.finetune import runs
    from core.finetune.train import train
    from core.jobs import Reporter

    data, _ = prepared()
    config = TrainConfig(
        dataset=str(DATASET), max_length=SHARED["max_length"], val_fraction=0.1, lora_r=SHARED["r"],
        lora_alpha=SHARED["alpha"], lora_dropout=SHARED["dropout"], target_modules=TARGETS,
        learning_rate=SHARED["lr"], lr_scheduler="constant", warmup_ratio=0.0, batch_size=SHARED["batch"],
        max_steps=steps, seed=SHARED["seed"], eval_steps=0, save_steps=10**6, n_samples=0,
    )  # fmt: skip
    run = runs.create_run(config)
    result = train({"run_dir": run.dir, "resume_from": None}, Reporter(Path(run.dir) / "bench"))
    peak = peak_rss_mb()  # of training (the validation below loads the base a second time)
    records = [m for m in runs.read_metrics(run.id) if m["kind"] == "train"]
    steps_out = [{"step": m["step"], "t": m["t"], "loss": m["loss"], "tokens": m["trained_tokens"]} for m in records]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.finetune.model import resolve_base

    base = AutoModelForCausalLM.from_pretrained(resolve_base("gemma3-270m"), dtype="float32")
    model = PeftModel.from_pretrained(base, result["adapter"])
    return {"steps": steps_out, "val_loss": validation_loss(model, data.val), "peak_rss_mb": peak}


def child_trl(steps: int, tuned: bool, home: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from core.finetune.model import resolve_base

    data, tokenizer = prepared()
    train_set = Dataset.from_dict({"input_ids": [e.input_ids for e in data.train],
                                   "labels": [e.labels for e in data.train]})  # fmt: skip
    # Without a GPU the defaults refuse to start ("doesn't support bf16/gpu ... assign use_cpu"): use_cpu=True is the
    # one setting a user must add, and it leaves bf16 and gradient checkpointing on.
    extra = {"bf16": False, "gradient_checkpointing": False} if tuned else {}
    if not torch.cuda.is_available():
        extra["use_cpu"] = True
    args = SFTConfig(
        output_dir=str(home / "trl"), per_device_train_batch_size=SHARED["batch"], learning_rate=SHARED["lr"],
        lr_scheduler_type="constant", max_steps=steps, seed=SHARED["seed"], max_length=SHARED["max_length"],
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, **extra,
    )  # fmt: skip
    log(f"SFTConfig bf16={args.bf16} gradient_checkpointing={args.gradient_checkpointing}")
    peft_config = LoraConfig(r=SHARED["r"], lora_alpha=SHARED["alpha"], lora_dropout=SHARED["dropout"],
                             target_modules=TARGETS, task_type="CAUSAL_LM")  # fmt: skip
    records = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                records.append({"step": state.global_step, "t": time.time(), "loss": float(logs["loss"]),
                                "tokens": int(logs["num_tokens"])})  # fmt: skip

    trainer = SFTTrainer(model=str(resolve_base("gemma3-270m")), args=args, train_dataset=train_set,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[Record()])  # fmt: skip
    trainer.train()
    peak = peak_rss_mb()
    model = trainer.model.float() if not tuned else trainer.model
    with torch.autocast("cpu", enabled=False):
        val = validation_loss(model, data.val)
    return {"steps": records, "val_loss": val, "peak_rss_mb": peak,
            "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing}  # fmt: skip


def rate(steps: list[dict], last: int) -> float:
    """Trained tokens/s from the end of step 1 to the end of step ``last``."""
    by_step = {s["step"]: s for s in steps}
    first, end = by_step[1], by_step[last]
    return (end["tokens"] - first["tokens"]) / (end["t"] - first["t"])


def run_child(variant: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-ft-{variant}-") as home, tempfile.NamedTemporaryFile() as out:
        log(f"{variant}: {steps} steps")
        started = time.time()
        from core import paths

        # A throwaway home per variant, with the embedded models prepared once by `make` (read-only).
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WORKBENCH_HOME": home,
               "WORKBENCH_EMBEDDED_DIR": str(paths.embedded_dir())}  # fmt: skip
        subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps), "--home", home,
                        "--out", out.name], check=True, env=env, stdout=sys.stderr)  # fmt: skip
        result = json.loads(Path(out.name).read_text())
        result["wall_s"] = time.time() - started
        log(f"{variant}: done in {result['wall_s']:.0f} s")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="steps of every variant (TRL defaults: ~1 min each)")
    parser.add_argument("--curve-steps", type=int, default=56, help="steps of ours and trl_tuned (loss curves)")
    parser.add_argument("--child", choices=("ours", "trl_tuned", "trl_default"))
    parser.add_argument("--home")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        home = Path(args.home)
        if args.child == "ours":
            result = child_ours(args.steps, home)
        else:
            result = child_trl(args.steps, args.child == "trl_tuned", home)
        Path(args.out).write_text(json.dumps(result))
        return

    results = {
        "ours": run_child("ours", args.curve_steps),
        "trl_tuned": run_child("trl_tuned", args.curve_steps),
        "trl_default": run_child("trl_default", args.steps),
    }
    n = args.steps
    for result in results.values():
        tokens = {s["step"]: s["tokens"] for s in result["steps"]}
        result["tokens_through_common_steps"] = tokens[n]
    same_batches = len({r["tokens_through_common_steps"] for r in results.values()}) == 1
    ours, tuned, default = results["ours"], results["trl_tuned"], results["trl_default"]
    losses = {name: [s["loss"] for s in r["steps"]] for name, r in results.items()}
    curve_tokens = ours["steps"][-1]["tokens"]

    def mean_last(values, k=8):
        return statistics.fmean(values[-k:])

    summary = {
        "benchmark": "finetune",
        "model": "gemma3-270m (fp32 safetensors)",
        "settings": {
            **SHARED,
            "targets": TARGETS,
            "steps_all": n,
            "curve_steps": args.curve_steps,
            "train_examples": 225,
            "dataset": str(DATASET.relative_to(REPO)),
        },  # fmt: skip
        "same_batches": same_batches,
        "tokens_per_s": {
            "ours": rate(ours["steps"], args.curve_steps),
            "trl_tuned": rate(tuned["steps"], args.curve_steps),
            "ours_first_steps": rate(ours["steps"], n),
            "trl_tuned_first_steps": rate(tuned["steps"], n),
            "trl_default_first_steps": rate(default["steps"], n),
        },
        "peak_rss_mb": {name: r["peak_rss_mb"] for name, r in results.items()},
        "val_loss": {name: r["val_loss"] for name, r in results.items()},
        "loss": {
            "ours_vs_trl_tuned_max_abs_diff_per_step": max(
                abs(a - b) for a, b in zip(losses["ours"], losses["trl_tuned"], strict=True)
            ),
            "ours_mean_last8": mean_last(losses["ours"]),
            "trl_tuned_mean_last8": mean_last(losses["trl_tuned"]),
            "ours_first_steps": losses["ours"][:n],
            "trl_tuned_first_steps": losses["trl_tuned"][:n],
            "trl_default_first_steps": losses["trl_default"][:n],
            "curve_trained_tokens": curve_tokens,
        },
        "trl_default_config": {"bf16": default["bf16"], "gradient_checkpointing": default["gradient_checkpointing"]},
        "wall_s": {name: r["wall_s"] for name, r in results.items()},
    }
    rates = summary["tokens_per_s"]
    summary["ratio"] = {
        "vs_trl_default": rates["ours_first_steps"] / rates["trl_default_first_steps"],
        "vs_trl_tuned": rates["ours"] / rates["trl_tuned"],
        "vs_trl_tuned_first_steps": rates["ours_first_steps"] / rates["trl_tuned_first_steps"],
        "peak_rss_ours_over_trl_tuned": ours["peak_rss_mb"] / tuned["peak_rss_mb"],
    }
    summary["targets"] = {
        "vs_trl_default>=10": summary["ratio"]["vs_trl_default"] >= 10,
        "vs_trl_tuned>=2": summary["ratio"]["vs_trl_tuned"] >= 2,
        "peak_rss<=trl_tuned": summary["ratio"]["peak_rss_ours_over_trl_tuned"] <= 1.0,
        "loss_falls_as_fast": mean_last(losses["ours"]) <= mean_last(losses["trl_tuned"]) + 0.01
        and ours["val_loss"] <= tuned["val_loss"] + 0.01,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
