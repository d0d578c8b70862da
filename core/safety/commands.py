"""``workbench safety``: check texts, run the labelled set, list and toggle rules, read the audit log."""

import argparse
import json
import sys
from pathlib import Path

from core.cliutil import add_command, emit, out
from core.errors import WorkbenchError
from core.safety import audit
from core.safety.evaluate import SafetyEvalReport, evaluate
from core.safety.screen import Verdict, screen_input, screen_output
from core.safety.store import RuleStore


def _verdict_line(verdict: Verdict) -> str:
    fired = ", ".join(verdict.rule_ids) or "no rules"
    return f"{verdict.action:<9} {fired}"


def _screen(text: str, stage: str, store: RuleStore) -> Verdict:
    rules = store.current()
    return screen_input(text, rules) if stage == "input" else screen_output(text, {}, rules)


def _cmd_check(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.file is None):
        raise WorkbenchError("Give either a TEXT to check or --file FILE (one text per line), not both.")
    store = RuleStore()
    for error in store.current(toggles=False).errors:
        sys.stderr.write(f"warning: {error}\n")
    if args.text is not None:
        verdict = _screen(args.text, args.stage, store)
        human = _verdict_line(verdict)
        if verdict.banner:
            human = f"{verdict.banner}\n\n{human}"
        if verdict.redacted != args.text:
            human += f"\nredacted: {verdict.redacted}"
        emit(args, verdict.to_dict(), human)
        return 0
    path = Path(args.file)
    if not path.is_file():
        raise WorkbenchError(f"{path} does not exist.")
    # One verdict per input line, in order: a blank line still gets its (allow) verdict so that lines stay aligned.
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            verdict = _screen(line.rstrip("\r\n"), args.stage, store)
            out(json.dumps(verdict.to_dict(), ensure_ascii=False) if args.json else _verdict_line(verdict))
    return 0


def _report_text(report: SafetyEvalReport) -> str:
    lines = [
        f"{report.set_path}: {report.n} prompts ({', '.join(f'{k} {v}' for k, v in report.counts.items())})",
        f"emergency recall        {report.emergency_recall:.3f}  (target >= {report.targets['emergency_recall']})",
        f"personal-advice recall  {report.personal_advice_recall:.3f}  "
        f"(target >= {report.targets['personal_advice_recall']})",
        f"false-block rate        {report.false_block_rate:.3f}  (target <= {report.targets['false_block_rate']}; "
        f"blocked {report.false_block_only_rate:.3f}, emergency banner {report.false_emergency_rate:.3f})",
        f"accuracy                {report.accuracy:.3f}",
        f"targets {'met' if report.targets_met else 'NOT met'}",
    ]
    for miss in report.misses:
        lines.append(f"  miss {miss.id}: {miss.label} -> {miss.predicted} [{', '.join(miss.rules)}] {miss.text}")
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    report = evaluate(Path(args.set) if args.set else None)
    emit(args, report.to_dict(), _report_text(report))
    return 0 if report.targets_met else 3


def _cmd_rules(args: argparse.Namespace) -> int:
    ruleset = RuleStore().current()
    for error in ruleset.errors:
        sys.stderr.write(f"warning: {error}\n")
    rows = [
        {**r.to_dict(), "enabled": r.id not in ruleset.disabled}
        for r in ruleset.rules
        if not args.category or r.category == args.category
    ]
    human = "\n".join(
        f"{'on ' if row['enabled'] else 'off'} {row['id']:<28} {row['category']:<16} {row['stage']:<6} "
        f"{row['action']:<7} {row['source']}"
        for row in rows
    )
    emit(args, rows, human or "no rules")
    return 0


def _cmd_toggle(args: argparse.Namespace) -> int:
    ruleset = RuleStore().current()
    rule = ruleset.get(args.rule_id)  # raises naming the unknown id
    enabled = args.action == "enable"
    audit.set_rule_state(rule.id, enabled)
    emit(args, {"id": rule.id, "enabled": enabled}, f"{rule.id}: {'enabled' if enabled else 'disabled'}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    entries = audit.recent(limit=args.limit)
    human = "\n".join(
        f"{e.id:>6} {e.at} {e.stage:<6} {e.action:<9} {e.content_sha256[:12]} {e.text_len:>6} {','.join(e.rule_ids)}"
        for e in entries
    )
    emit(args, [e.to_dict() for e in entries], human or "no verdicts logged yet")
    return 0


def add_commands(groups: argparse._SubParsersAction) -> None:
    """Register the ``safety`` command group on the ``workbench`` parser.

    Args:
        groups: The top-level sub-parsers of ``core.cli.build_parser``.
    """
    safety = groups.add_parser("safety", help="medical guardrails: screen text, rules, audit log, labelled eval")
    cmds = safety.add_subparsers(dest="action", required=True)
    p = add_command(cmds, "check", _cmd_check, "screen a text (or each line of --file) and print the verdict")
    p.add_argument("text", nargs="?", help="the text to screen (quote it)")
    p.add_argument("--file", help="screen each line of FILE; with --json, one JSON verdict per line, in order")
    p.add_argument("--stage", choices=("input", "output"), default="input", help="user input or model output")
    p = add_command(cmds, "eval", _cmd_eval, "run a labelled set; exit status 3 when a target is missed")
    p.add_argument("--set", help="JSONL set with text and label (default: data/eval/safety.jsonl)")
    p = add_command(cmds, "rules", _cmd_rules, "list the rules in force (shipped + your rules.user.yaml)")
    p.add_argument("--category", help="only rules of this category")
    p = add_command(cmds, "audit", _cmd_audit, "show the newest audit rows (hashes of screened texts, never text)")
    p.add_argument("--limit", type=int, default=50)
    for action in ("enable", "disable"):
        p = add_command(cmds, action, _cmd_toggle, f"{action} a rule for this workbench home")
        p.add_argument("rule_id")
