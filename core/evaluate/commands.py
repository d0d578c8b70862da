"""``workbench eval run|metrics|list|show|compare|delete``."""

import argparse
import signal
import sys
from pathlib import Path

from core.cliutil import add_command, emit, out
from core.config import ConfigError
from core.evaluate import registry
from core.evaluate.export import rows_csv, summary_table
from core.evaluate.metrics import score_texts
from core.runfolder import RunFolder

HEADLINE = ("exact_match", "f1", "bleu", "rougeL", "retrieval.doc.mrr", "citations.cites_gold")


def _run(args: argparse.Namespace) -> int:
    from core.evaluate.run import execute

    cfg = registry.load_config_file(args.config)
    overrides = {"limit": args.limit, "tags": args.tags}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = type(cfg).from_dict({**cfg.to_dict(), **overrides})
    folder = registry.create(cfg)
    if not args.json:
        out(f"evaluation {folder.id}: {registry.run_name(cfg)} (Ctrl-C stops it and writes a partial report)")
    last = {"shown": -1}

    def progress(fraction, message, **fields):
        step = int((fraction or 0) * 20)
        if step != last["shown"]:
            last["shown"] = step
            sys.stderr.write(f"[{(fraction or 0) * 100:5.1f}%] {message}\n")

    def stop(signum, frame):
        raise KeyboardInterrupt  # SIGTERM (a scheduler, `kill`) ends the run as Ctrl-C does: with a partial report

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        report = execute(folder, progress)
        code = 0
    except KeyboardInterrupt:
        report = registry.load_report(folder.id)
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(args, _payload(folder.id, report), _human(folder.id, report))
    return code


def _payload(run_id: str, report: dict) -> dict:
    return {"run_id": run_id, "run_dir": str(RunFolder.open("eval", run_id).path), **report}


def _human(run_id: str, report: dict) -> str:
    lines = [f"run {run_id}: {report['status']}" + (" (PARTIAL: not every question was answered)"
                                                   if report.get("partial") else "")]  # fmt: skip
    lines.append(summary_table(report, HEADLINE))
    for comparison in report.get("comparisons", []):
        lines.append(_comparison_text(comparison))
    bad = (report.get("eval_set") or {}).get("bad_rows") or []
    for row in bad[:10]:
        lines.append(f"eval set line {row['line']} skipped: {row['error']}")
    for name, error in (report.get("load_errors") or {}).items():
        lines.append(f"{name} did not load: {error}")
    return "\n".join(lines)


def _comparison_text(c: dict) -> str:
    lines = [f"{c['b']} vs {c['a']} on {c['n']} paired questions (95% paired bootstrap of b - a):"]
    for name in HEADLINE:
        m = c["metrics"].get(name)
        if m:
            mark = " *" if m["excludes_zero"] else ""
            lines.append(f"  {name:<24} {m['diff']:+.4f}  [{m['low']:+.4f}, {m['high']:+.4f}]{mark}")
    test = c.get("mcnemar_exact_match")
    if test:
        lines.append(f"  McNemar exact (exact match): only a right {test['only_a']}, only b right {test['only_b']}, "
                     f"p = {test['p_value']:.4g}")  # fmt: skip
    lines.extend(f"  warning: {w}" for w in c.get("warnings", []))
    return "\n".join(lines)


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"File not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path} as UTF-8 text: {exc}") from None


def _metrics(args: argparse.Namespace) -> int:
    predictions = _read_lines(args.pred)
    ref_files = [_read_lines(p) for p in args.ref]
    for path, lines in zip(args.ref, ref_files, strict=True):
        if len(lines) != len(predictions):
            raise ConfigError(f"{args.pred} has {len(predictions)} lines but {path} has {len(lines)}; "
                              "give one answer and one reference per line")  # fmt: skip
    references = [[lines[i] for lines in ref_files] for i in range(len(predictions))]
    try:
        result = score_texts(predictions, references)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    human = "\n".join(f"{k:<14} {v:.4f}" for k, v in result.items() if isinstance(v, float))
    human = f"n              {result['n']}\n{human}\nBLEU signature: {result['signatures']['bleu']['signature']}"
    emit(args, result, human)
    return 0


def _list(args: argparse.Namespace) -> int:
    found = registry.list_runs(args.limit)
    lines = [f"{r.id}  {r.status:<11} {r.n_questions:>4} q  {r.name}" for r in found]
    emit(args, [r.to_dict() for r in found], "\n".join(lines) or "no evaluation runs yet")
    return 0


def _show(args: argparse.Namespace) -> int:
    report = registry.load_report(args.id)
    if args.csv:
        Path(args.csv).write_text(rows_csv(registry.read_rows(args.id)), encoding="utf-8")
    payload = _payload(args.id, report)
    if args.rows:
        payload["rows"] = registry.read_rows(args.id)
    emit(args, payload, _human(args.id, report) + (f"\nrows written to {args.csv}" if args.csv else ""))
    return 0


def _compare(args: argparse.Namespace) -> int:
    result = registry.compare_refs(args.refs, resamples=args.resamples, seed=args.seed)
    emit(args, result, "\n".join(_comparison_text(c) for c in result))
    return 0


def _delete(args: argparse.Namespace) -> int:
    registry.delete(args.id)
    emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return 0


def add_commands(groups: argparse._SubParsersAction) -> None:
    """Register ``workbench eval ...``."""
    group = groups.add_parser("eval", help="evaluate systems on an eval set").add_subparsers(dest="action",
                                                                                           required=True)  # fmt: skip
    p = add_command(group, "run", _run, "run an evaluation from a YAML or JSON EvalConfig file")
    p.add_argument("config", help="YAML or JSON file: eval_set, systems, ... (the Evaluate page writes the same)")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--tags", action="append", help="only questions with this tag (repeatable), e.g. --tags unseen")
    p = add_command(group, "metrics", _metrics, "score answers made elsewhere: one answer and one reference per line")
    p.add_argument("--pred", required=True, help="file of answers, one per line")
    p.add_argument("--ref", required=True, action="append", help="file of references, one per line (repeatable)")
    p = add_command(group, "list", _list, "list evaluation runs, newest first")
    p.add_argument("--limit", type=int, default=100)
    p = add_command(group, "show", _show, "show a run's report")
    p.add_argument("id")
    p.add_argument("--rows", action="store_true", help="include every row in --json output")
    p.add_argument("--csv", help="also write the rows to this CSV file")
    p = add_command(group, "compare", _compare, "paired comparison: one run's systems, or RUN[:SYSTEM] RUN[:SYSTEM]")
    p.add_argument("refs", nargs="+", help="a run id, or two RUN[:SYSTEM] references")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p = add_command(group, "delete", _delete, "delete a finished run")
    p.add_argument("id")
