"""The ``workbench`` command: the same operations as the app, for scripts (``--json`` for machine output)."""

import argparse
import json
import logging
import sys
from dataclasses import asdict

from core import jobs
from core.chat import commands as chat_commands
from core.cliutil import add_command, emit, out
from core.errors import WorkbenchError
from core.evaluate import commands as eval_commands
from core.finetune import commands as finetune_commands
from core.models import embedded, registry
from core.models.formats import ROLES
from core.rag import commands as rag_commands
from core.safety import commands as safety_commands


def _model_line(entry: registry.ModelEntry) -> str:
    size = f"{entry.size_bytes / 1e6:,.0f} MB" if entry.size_bytes else "-"
    return f"{entry.name:<28} {entry.role:<14} {entry.format:<5} {size:>9}  {entry.status:<12} {entry.detail}"


def _cmd_models_list(args: argparse.Namespace) -> int:
    entries = registry.list_models(role=args.role)
    emit(args, [e.to_dict() for e in entries], "\n".join(_model_line(e) for e in entries) or "no models")
    return 0


def _cmd_models_add(args: argparse.Namespace) -> int:
    entry = registry.add_model(args.source, name=args.name, role=args.role)
    emit(args, entry.to_dict(), _model_line(entry))
    return 0 if entry.status == "ready" else 3


def _cmd_models_check(args: argparse.Namespace) -> int:
    names = args.names or [e.name for e in registry.list_models()]
    entries = [registry.check_model(name) for name in names]
    emit(args, [e.to_dict() for e in entries], "\n".join(_model_line(e) for e in entries) or "no models")
    return 0 if all(e.status == "ready" for e in entries) else 3


def _cmd_models_remove(args: argparse.Namespace) -> int:
    registry.remove_model(args.name)
    emit(args, {"removed": args.name}, f"removed {args.name}")
    return 0


def _cmd_models_prepare(args: argparse.Namespace) -> int:
    def progress(fraction: float, message: str) -> None:
        if not args.json:
            out(f"[{fraction * 100:5.1f}%] {message}")

    result = embedded.prepare(progress=progress, verify_hashes=args.verify)
    emit(args, result, "embedded models ready: " + ", ".join(result["models"]))
    return 0


def _cmd_jobs_list(args: argparse.Namespace) -> int:
    listed = jobs.list_jobs(limit=args.limit)
    lines = [f"{s.id}  {s.state:<9} {s.elapsed_s:7.0f}s  {s.title}  {s.message}" for s in listed]
    emit(args, [asdict(s) for s in listed], "\n".join(lines) or "no jobs")
    return 0


def _cmd_jobs_show(args: argparse.Namespace) -> int:
    status = jobs.status(args.id)
    human = f"{status.id}  {status.state}  {status.title}\n{status.message}\n{status.error}\n"
    human += f"--- log ---\n{status.log_tail}"
    emit(args, asdict(status), human)
    return 0


def _cmd_jobs_cancel(args: argparse.Namespace) -> int:
    status = jobs.cancel(args.id, grace_s=args.grace_s)  # None: the stop grace the job's kind declared
    emit(args, asdict(status), f"{status.id}  {status.state}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``workbench`` command."""
    parser = argparse.ArgumentParser(prog="workbench", description="MedGemma Workbench (not a medical device)")
    groups = parser.add_subparsers(dest="group", required=True)

    models = groups.add_parser("models", help="the model registry").add_subparsers(dest="action", required=True)
    p = add_command(models, "list", _cmd_models_list, "list registered models with their status")
    p.add_argument("--role", choices=ROLES, help="only models with this role")
    p = add_command(models, "add", _cmd_models_add, "register a local model path or a cached hub id")
    p.add_argument("source", help="a .gguf/.onnx file, a model folder, or a hub id such as google/medgemma-4b-it")
    p.add_argument("--name", help="registry name (default: file or repo name)")
    p.add_argument("--role", choices=ROLES, help="what the model is for (default: detected)")
    p = add_command(models, "check", _cmd_models_check, "fully re-validate models (all when no name is given)")
    p.add_argument("names", nargs="*", help="model names")
    p = add_command(models, "remove", _cmd_models_remove, "forget a user-added model (files are kept)")
    p.add_argument("name")
    p = add_command(models, "prepare", _cmd_models_prepare, "prepare the embedded default models (idempotent)")
    p.add_argument("--verify", action="store_true", help="also re-hash models that are already prepared")

    job_cmds = groups.add_parser("jobs", help="background jobs").add_subparsers(dest="action", required=True)
    p = add_command(job_cmds, "list", _cmd_jobs_list, "list jobs, newest first")
    p.add_argument("--limit", type=int, default=50)
    p = add_command(job_cmds, "show", _cmd_jobs_show, "show one job with its log tail")
    p.add_argument("id")
    p = add_command(job_cmds, "cancel", _cmd_jobs_cancel, "cancel a running job and its child processes")
    p.add_argument("id")
    p.add_argument("--grace-s", type=float, help="seconds it gets to stop cleanly (default: what its kind declared)")

    rag_commands.add_commands(groups)
    chat_commands.add_commands(groups)
    safety_commands.add_commands(groups)
    finetune_commands.add_commands(groups)
    eval_commands.add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 error, 3 done but a model is not ready)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except WorkbenchError as exc:
        if args.json:
            out(json.dumps({"error": str(exc)}))
        else:
            sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
