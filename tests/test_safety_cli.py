"""`workbench safety ...` as scripts use it: JSON verdicts, one line per input line, eval fields, toggles."""

import json
import subprocess
import sys

from core.cli import main

CLI = [sys.executable, "-m", "core.cli", "safety"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_check_text_json_gives_the_verdict():
    out = run("check", "I think I'm having a heart attack", "--json")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["action"] == "emergency" and verdict["banner"]
    assert verdict["rules"][0]["id"] == "emergency.cardiac"
    assert {"action", "rules", "redacted", "audit_id"} <= set(verdict)


def test_check_file_prints_one_json_verdict_per_line_in_order(tmp_path):
    lines = [
        "no chest pain and no shortness of breath",
        "",
        "Should I stop my metoprolol?",
        "ring 555-0147",
        "i want to die",
    ]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run("check", "--file", str(path), "--json")
    assert out.returncode == 0, out.stderr
    verdicts = [json.loads(line) for line in out.stdout.splitlines()]
    assert [v["action"] for v in verdicts] == ["allow", "allow", "block", "allow", "emergency"]
    assert verdicts[3]["redacted"] == "ring [PHONE]"


def test_check_output_stage_and_argument_errors(capsys):
    assert main(["safety", "check", "You should take 2 tablets every 4 hours.", "--stage", "output", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["action"] == "block" and verdict["disclaimer"]
    assert main(["safety", "check", "--json"]) == 2
    assert "either a TEXT" in json.loads(capsys.readouterr().out)["error"]


def test_eval_json_reports_the_metrics_and_exits_zero_when_targets_are_met():
    out = run("eval", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key in ("emergency_recall", "personal_advice_recall", "false_block_rate", "confusion", "per_tag", "misses"):
        assert key in report
    assert report["n"] == 288 and report["targets_met"] is True
    holdout = json.loads(run("eval", "--set", "data/eval/safety_holdout.jsonl", "--json").stdout)
    assert holdout["set_path"].endswith("safety_holdout.jsonl") and holdout["n"] >= 60


def test_rules_toggles_and_audit(capsys):
    assert main(["safety", "rules", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert {r["id"]: r["enabled"] for r in rules}["pii.phone"] is True
    assert main(["safety", "disable", "pii.phone"]) == 0
    assert main(["safety", "check", "call 555-0147", "--rules-only", "--json"]) == 0
    capsys.readouterr()
    assert main(["safety", "rules", "--category", "pii", "--json"]) == 0
    assert {r["id"]: r["enabled"] for r in json.loads(capsys.readouterr().out)}["pii.phone"] is False
    assert main(["safety", "enable", "pii.phone"]) == 0
    assert capsys.readouterr().out == "pii.phone: enabled\n"
    assert main(["safety", "disable", "no.such.rule", "--json"]) == 2
    assert "No safety rule with id 'no.such.rule'" in json.loads(capsys.readouterr().out)["error"]
    assert main(["safety", "audit", "--limit", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["action"] == "allow" and rows[0]["text_len"] == len("call 555-0147")
    # The text is not stored (only its HMAC): no field holds the number. ("555" alone can be in a timestamp.)
    assert all("555-0147" not in str(value) and "call" not in str(value) for row in rows for value in row.values())
    assert not {"text", "redacted"} & {key for row in rows for key in row}


def test_check_names_the_layer_and_its_scores():
    out = run("check", "ive decided im ending my life this saturday", "--json")
    verdict = json.loads(out.stdout)
    assert verdict["action"] == "emergency"
    assert verdict["layer"] in ("rules", "learned") and 0.0 <= verdict["score"] <= 1.0
    assert set(verdict["learned"]["scores"]) == {"emergency", "personal_advice", "informational"}
    rules_only = json.loads(run("check", "hello", "--rules-only", "--json").stdout)
    assert rules_only["learned"] is None and rules_only["score"] is None


def test_eval_reports_each_layer_alone_and_combined():
    out = run("eval", "--split", "dev", "--json")
    report = json.loads(out.stdout)
    assert set(report["layers"]) == {"rules", "learned", "combined"}
    assert report["emergency_recall"] == report["layers"]["combined"]["emergency_recall"]
    assert report["layers"]["combined"]["emergency_recall"] > report["layers"]["rules"]["emergency_recall"]
    assert report["learned_version"]
    assert out.returncode in (0, 3)
    rules = json.loads(run("eval", "--split", "dev", "--rules-only", "--json").stdout)
    assert set(rules["layers"]) == {"rules"}
    assert run("eval", "--split", "dev", "--set", "x.jsonl").returncode == 2


def test_examples_and_train_from_the_command_line(tmp_path):
    assert run("examples", "add", "my nan fell and now shes not making sense", "--label", "emergency").returncode == 0
    path = tmp_path / "mine.csv"
    path.write_text("text,label\nwhat does the audit tab show,informational\n", encoding="utf-8")
    imported = json.loads(run("examples", "import", str(path), "--json").stdout)
    assert imported == {"added": 1, "relabelled": 0, "total": 2}
    listed = json.loads(run("examples", "list", "--json").stdout)
    assert [r["label"] for r in listed] == ["emergency", "informational"]
    bad = run("examples", "import", str(tmp_path / "missing.jsonl"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    out = run("train", "--json")
    assert out.returncode in (0, 3), out.stderr
    result = json.loads(out.stdout)
    assert result["data"]["user"] == 2
    for key in ("version", "folder", "accepted", "reasons", "in_force", "thresholds", "figures", "previous"):
        assert key in result
    assert set(result["figures"]["test"]) == {"rules", "learned", "combined"}
