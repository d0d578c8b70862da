"""``workbench train CONFIG`` (or ``--resume RUN``) and ``workbench runs ...``."""

import argparse
import time

from core import jobs
from core.cliutil import add_command, emit, out
from core.config import ConfigError
from core.finetune import runs
from core.finetune.dataset import prepare
from core.finetune.model import training_tokenizer


def _train(args: argparse.Namespace) -> int:
    if bool(args.config) == bool(args.resume):
        raise ConfigError("Give a CONFIG file for a new run, or --resume RUN_ID to continue one")
    if args.config:
        config = runs.load_config_file(args.config)
        if args.check:
            return _check(args, config)
        run = runs.create_run(config)
        job_id = runs.start(run.id)
    else:
        run = runs.get_run(args.resume)
        job_id = runs.start(run.id, resume_from=args.checkpoint)
    if args.detach:
        emit(args, {"run_id": run.id, "job_id": job_id, "run_dir": run.dir}, f"run {run.id} started (job {job_id})")
        return 0
    if not args.json:
        out(f"run {run.id} (job {job_id}); Ctrl-C cancels after a checkpoint")
    try:
        _follow(args, run.id, job_id)
    except KeyboardInterrupt:
        out("cancelling (finishing the step and saving a checkpoint)...")
        runs.cancel(run.id)
    final = runs.get_run(run.id)
    payload = {**final.to_dict(), "run_id": final.id, "job_id": job_id}
    human = f"run {final.id}: {final.state}" + (f"\nadapter: {final.adapter}" if final.adapter else "")
    human += f"\n{final.error}" if final.error else ""
    emit(args, payload, human)
    return {"finished": 0, "cancelled": 130}.get(final.state, 1)


def _follow(args: argparse.Namespace, run_id: str, job_id: str) -> None:
    # The curves come from the run's metrics log (the job logs progress only); records of earlier attempts of a
    # resumed run carry other job ids.
    shown = 0
    while True:
        finished = jobs.status(job_id).finished  # before reading: the last records are in once it has ended
        metrics = [m for m in runs.metrics_log(run_id) if m.get("job_id") == job_id]
        if not args.json:
            for metric in metrics[shown:]:
                if metric.get("kind") == "eval":
                    out(f"step {metric['step']:>5}  validation loss {metric['eval_loss']:.4f}")
                else:
                    out(f"step {metric['step']:>5}  loss {metric['loss']:.4f}  lr {metric.get('lr') or 0:.2e}  "
                        f"{metric['tokens_per_s']:6.1f} tok/s  ETA {metric['eta_s'] / 60:5.1f} min")  # fmt: skip
        shown = len(metrics)
        if finished:
            return
        time.sleep(1.0)


def _check(args: argparse.Namespace, config) -> int:
    report = prepare(config, training_tokenizer(config.base_model)).report
    lines = [
        f"{report.path} ({report.format}): {report.rows_ok} of {report.rows_total} rows usable; "
        f"{report.n_train} train / {report.n_val} validation; {report.tokens_trained} of {report.tokens_total} "
        f"tokens trained; longest {report.max_tokens}; truncated {report.truncated}, "
        f"dropped {report.dropped_overlong}",
        *(f"  row {e.row}: {e.reason}" for e in report.errors),
    ]
    for example in report.preview:
        lines.append(f"--- row {example.row}: {example.n_tokens} tokens, {example.n_trained} trained "
                     "(trained text in [[ ]]) ---")  # fmt: skip
        lines.append("".join(f"[[{s.text}]]" if s.trained else s.text for s in example.segments))
    emit(args, report.to_dict(), "\n".join(lines))
    return 0 if report.ok else 4


def _list(args: argparse.Namespace) -> int:
    listed = runs.list_runs()
    lines = [f"{r.id}  {r.state:<9} {r.name}  {r.adapter or ''}" for r in listed]
    emit(args, [r.to_dict() for r in listed], "\n".join(lines) or "no runs")
    return 0


def _show(args: argparse.Namespace) -> int:
    run = runs.get_run(args.id)
    metrics = runs.read_metrics(run.id)
    train = [m for m in metrics if m.get("kind") == "train"]
    human = f"{run.id}  {run.state}  {run.name}\n{run.message}\n{run.error}\n"
    human += f"checkpoints: {', '.join(str(c.step) for c in run.checkpoints) or 'none'}\n"
    if train:
        human += f"last step {train[-1]['step']}: loss {train[-1]['loss']:.4f}\n"
    human += f"adapter: {run.adapter or '-'}"
    emit(args, {**run.to_dict(), "metrics": metrics, "samples": runs.read_samples(run.id)}, human)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    run = runs.cancel(args.id)
    emit(args, run.to_dict(), f"{run.id}  {run.state}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    runs.delete_run(args.id)
    emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return 0


def add_commands(groups: argparse._SubParsersAction) -> None:
    """Register the fine-tuning commands on the top-level sub-parsers."""
    p = add_command(groups, "train", _train, "LoRA fine-tuning run as a background job (follows it until it ends)")
    p.add_argument("config", nargs="?", help="TrainConfig as YAML or JSON (the Fine-tune page writes the same file)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a run from a checkpoint instead of starting one")
    p.add_argument("--checkpoint", default="last", help="with --resume: a step number or 'last' (default)")
    p.add_argument("--check", action="store_true", help="only validate the dataset and preview formatted examples")
    p.add_argument("--detach", action="store_true", help="start the job and return at once")

    group = groups.add_parser("runs", help="fine-tuning runs").add_subparsers(dest="action", required=True)
    add_command(group, "list", _list, "list runs, newest first")
    add_command(group, "show", _show, "show a run with metrics, checkpoints and samples").add_argument("id")
    add_command(group, "cancel", _cancel, "cancel a training run (saves a checkpoint)").add_argument("id")
    add_command(group, "delete", _delete, "delete a run folder").add_argument("id")
