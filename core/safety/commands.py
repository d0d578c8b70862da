"""``workbench safety``: check texts, run the labelled set, list and toggle rules, read the audit log."""

import argparse
import json
import sys
from pathlib import Path

from core.cliutil import add_command, config_option, emit, out
from core.config import SafetyTrainConfig
from core.errors import WorkbenchError
from core.safety import audit, examples
from core.safety.evaluate import LAYERS, SafetyEvalReport, evaluate
from core.safety.learned import LayerStore, LearnedLayer
from core.safety.screen import Verdict, screen_input, screen_output
from core.safety.store import RuleStore


def _verdict_line(verdict: Verdict) -> str:
    fired = ", ".join(verdict.rule_ids) or "no rules"
    line = f"{verdict.action:<9} {fired}"
    if verdict.learned is not None:
        p = verdict.learned.probs
        line += f"  [learned: emergency {p['emergency']:.2f}, advice {p['personal_advice']:.2f}]"
    if verdict.layer:
        line += f"  (by {verdict.layer})"
    return line


def _layer(args: argparse.Namespace) -> LearnedLayer | None:
    if getattr(args, "rules_only", False):
        return None
    store = LayerStore()
    layer = store.current()
    for error in store.errors:
        sys.stderr.write(f"warning: {error}\n")
    return layer


def _screen(text: str, stage: str, store: RuleStore, layer: LearnedLayer | None) -> Verdict:
    rules = store.current()
    return screen_input(text, rules, learned=layer) if stage == "input" else screen_output(text, {}, rules)


def _cmd_check(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.file is None):
        raise WorkbenchError("Give either a TEXT to check or --file FILE (one text per line), not both.")
    store = RuleStore()
    for error in store.current(toggles=False).errors:
        sys.stderr.write(f"warning: {error}\n")
    layer = _layer(args) if args.stage == "input" else None
    if args.text is not None:
        verdict = _screen(args.text, args.stage, store, layer)
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
            verdict = _screen(line.rstrip("\r\n"), args.stage, store, layer)
            out(json.dumps(verdict.to_dict(), ensure_ascii=False) if args.json else _verdict_line(verdict))
    return 0


def _report_text(report: SafetyEvalReport) -> str:
    t = report.targets
    names = [n for n in LAYERS if n in report.layers]
    rows = (("emergency recall", "emergency_recall", f">= {t['emergency_recall']}"),
            ("personal-advice recall", "personal_advice_recall", f">= {t['personal_advice_recall']}"),
            ("informational blocked", "false_block_only_rate", f"<= {t['false_block_only_rate']}"),
            ("informational bannered", "false_emergency_rate", f"<= {t['false_emergency_rate']}"),
            ("accuracy", "accuracy", ""))  # fmt: skip
    lines = [
        f"{report.set_path}: {report.n} prompts ({', '.join(f'{k} {v}' for k, v in report.counts.items())})"
        + (f"; learned layer {report.learned_version}" if report.learned_version else ""),
        f"{'':<24}" + "".join(f"{n:>10}" for n in names) + "    target",
    ]
    for title, key, target in rows:
        lines.append(f"{title:<24}" + "".join(f"{report.layers[n][key]:>10.3f}" for n in names) + f"    {target}")
    lines.append(f"targets {'met' if report.targets_met else 'NOT met'} ({names[-1]})")
    for miss in report.misses:
        lines.append(f"  miss {miss.id}: {miss.label} -> {miss.predicted} [{', '.join(miss.rules)}] {miss.text}")
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.set and args.split:
        raise WorkbenchError("Give --set FILE or --split NAME, not both.")
    path = Path(args.set) if args.set else (examples.split_path(args.split) if args.split else None)
    report = evaluate(path, learned=_layer(args))
    emit(args, report.to_dict(), _report_text(report))
    return 0 if report.targets_met else 3


def _train_text(result: dict) -> str:
    state = "in force" if result["in_force"] == result["version"] else "NOT put in force"
    lines = [f"layer {result['version']}: {state}"
             f" ({result['data']['train']} training prompts, {result['data']['user']} of them yours; "
             f"{result['seconds']} s)"]  # fmt: skip
    lines += [f"  kept the previous layer: {r}" for r in result["reasons"]]
    for split in ("dev", "test"):
        for name, m in result["figures"][split].items():
            lines.append(f"  {split:<4} {name:<8} emergency {m['emergency_recall']:.3f}  advice "
                         f"{m['personal_advice_recall']:.3f}  blocked {m['false_block_only_rate']:.3f}  bannered "
                         f"{m['false_emergency_rate']:.3f}")  # fmt: skip
    lines.append(f"  thresholds {result['thresholds']}  overrides {result['overrides']}")
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    from core.safety.train import train

    names = ("kind", "hidden", "epochs", "seed", "emergency_weight")
    values = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.no_user_examples:
        values["user_examples"] = False
    result = train(SafetyTrainConfig.from_dict(values), progress=None)
    emit(args, result, _train_text(result))
    return 0 if result["accepted"] else 3


def _cmd_examples(args: argparse.Namespace) -> int:
    if args.examples_action == "add":
        result = examples.add_examples([{"text": args.text, "label": args.label, "note": args.note or ""}], "cli")
    elif args.examples_action == "import":
        path = Path(args.file)
        if not path.is_file():
            raise WorkbenchError(f"{path} does not exist.")
        result = examples.add_examples(examples.parse_upload(path.name, path.read_bytes()), path.name)
    elif args.examples_action == "remove":
        if not examples.remove_example(args.id):
            raise WorkbenchError(f"No example with id {args.id!r} (`workbench safety examples list`).")
        result = {"removed": args.id}
    else:
        rows = examples.user_examples()
        emit(args, rows, "\n".join(f"{r['id']}  {r['label']:<16} {r['text'][:90]}" for r in rows) or "no examples")
        return 0
    emit(args, result, json.dumps(result))
    return 0


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
    p.add_argument("--rules-only", action="store_true", help="screen with the rules alone (no learned layer)")
    p = add_command(cmds, "eval", _cmd_eval, "run a labelled set: each layer alone and combined; exit 3 on a miss")
    p.add_argument("--set", help="JSONL set with text and label (default: data/eval/safety.jsonl)")
    p.add_argument("--split", choices=examples.SPLITS, help="a shipped split instead (test: the frozen blind part)")
    p.add_argument("--rules-only", action="store_true", help="evaluate the rules alone")
    p = add_command(
        cmds, "train", _cmd_train, "retrain the learned layer (seconds); exit 3 when the gate kept the old"
    )
    for name in ("kind", "hidden", "epochs", "seed", "emergency_weight"):
        config_option(p, SafetyTrainConfig, name, f"--{name.replace('_', '-')}")
    p.add_argument("--no-user-examples", action="store_true", help="train on the shipped split only")
    p = cmds.add_parser("examples", help="your labelled prompts (they join training): add, import, list, remove")
    ex = p.add_subparsers(dest="examples_action", required=True)
    q = add_command(ex, "add", _cmd_examples, "add one labelled prompt")
    q.add_argument("text")
    q.add_argument("--label", required=True, choices=("emergency", "personal_advice", "informational"))
    q.add_argument("--note")
    q = add_command(ex, "import", _cmd_examples, "add the rows of a JSONL or CSV file (text, label)")
    q.add_argument("file")
    add_command(ex, "list", _cmd_examples, "list your examples")
    q = add_command(ex, "remove", _cmd_examples, "remove one of your examples by id")
    q.add_argument("id")
    p = add_command(cmds, "rules", _cmd_rules, "list the rules in force (shipped + your rules.user.yaml)")
    p.add_argument("--category", help="only rules of this category")
    p = add_command(cmds, "audit", _cmd_audit, "show the newest audit rows (hashes of screened texts, never text)")
    p.add_argument("--limit", type=int, default=50)
    for action in ("enable", "disable"):
        p = add_command(cmds, action, _cmd_toggle, f"{action} a rule for this workbench home")
        p.add_argument("rule_id")
