"""`workbench eval ...` as scripts use it: the documented commands, flags and JSON fields, and clear errors."""

import csv
import io
import json
import subprocess
import sys

import pytest
import sacrebleu

from tests.core.evaluate.conftest import demo_index, eval_set  # noqa: F401 - fixtures

CLI = [sys.executable, "-m", "core.cli", "eval"]


def run(*args, timeout=600):
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def test_metrics_scores_two_files_of_one_answer_per_line(tmp_path):
    pred = ["Bazett's formula", "The cat sat on the mat.", "", "Καλημέρα κόσμε"]
    ref = ["Bazett formula", "A cat sat on a mat", "", "Καλημέρα κόσμε"]
    (tmp_path / "pred.txt").write_text("\n".join(pred) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    code, out, err = run("metrics", "--pred", str(tmp_path / "pred.txt"), "--ref", str(tmp_path / "ref.txt"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 4
    assert result["exact_match"] == pytest.approx(3 / 4)  # "the"/"a" and punctuation are normalised away; ""=""
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(pred, [ref]).score)
    # Per line: 0.8 ("s" is a token), 4 of 6 words, 0 (rouge-score scores empty against empty 0), and 1 for the
    # Greek line (rouge-score's default tokenizer would score it 0).
    assert result["rouge1"] == pytest.approx((0.8 + 2 / 3 + 0 + 1) / 4)
    assert "nrefs:1" in result["signatures"]["bleu"]["signature"]


def test_metrics_refuses_files_of_different_lengths(tmp_path):
    (tmp_path / "pred.txt").write_text("a\nb\n")
    (tmp_path / "ref.txt").write_text("a\n")
    code, out, _ = run("metrics", "--pred", str(tmp_path / "pred.txt"), "--ref", str(tmp_path / "ref.txt"), "--json")
    assert code == 2 and "has 2 lines but" in json.loads(out)["error"]
    code, out, _ = run("metrics", "--pred", str(tmp_path / "nope.txt"), "--ref", str(tmp_path / "ref.txt"), "--json")
    assert code == 2 and "File not found" in json.loads(out)["error"]


@pytest.mark.slow
def test_run_list_show_compare_delete(tmp_path, demo_index, eval_set):  # noqa: F811
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"eval_set: {eval_set}\nsafety_sets: []\nsystems:\n"
        "  - {name: gemma, model: gemma3-270m-gguf, top_k: 2, max_new_tokens: 24}\n"
        "  - {name: smol, model: smollm2-135m-instruct, top_k: 2, max_new_tokens: 24}\n"
    )
    code, out, err = run("run", str(config), "--limit", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    run_id = report["run_id"]
    assert report["status"] == "complete" and report["n_questions"] == 2
    assert set(report["systems"]) == {"gemma", "smol"} and report["systems"]["smol"]["n_scored"] == 2
    assert {"metrics", "by_tag", "cost", "safety", "n_scored", "n_failed"} <= set(report["systems"]["gemma"])
    assert report["comparisons"][0]["a"] == "gemma" and "mcnemar_exact_match" in report["comparisons"][0]

    code, out, _ = run("list", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [run_id]
    code, out, _ = run("show", run_id, "--json", "--rows", "--csv", str(tmp_path / "rows.csv"))
    shown = json.loads(out)
    assert code == 0 and shown["systems"] == report["systems"] and len(shown["rows"]) == 4
    table = list(csv.DictReader(io.StringIO((tmp_path / "rows.csv").read_text())))
    assert len(table) == 4 and {"system", "question", "answer", "f1"} <= set(table[0])
    code, out, _ = run("compare", f"{run_id}:smol", f"{run_id}:gemma", "--json")
    (comparison,) = json.loads(out)
    assert code == 0 and comparison["a"] == "smol" and comparison["n"] == 2 and "bleu" in comparison["metrics"]
    code, out, _ = run("compare", f"{run_id}:nobody", "--json")
    assert code == 2
    code, out, _ = run("delete", run_id, "--json")
    assert code == 0 and json.loads(out) == {"deleted": run_id}
    code, out, _ = run("show", run_id, "--json")
    assert code == 2 and "No evaluation run" in json.loads(out)["error"]


def test_run_refuses_a_bad_config_clearly(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"systems": [{"name": "a", "temperature": 9}]}))
    code, out, _ = run("run", str(tmp_path / "eval.json"), "--json")
    assert code == 2 and "temperature must be between 0 and 2" in json.loads(out)["error"]
    code, out, _ = run("run", str(tmp_path / "missing.yaml"), "--json")
    assert code == 2 and "Config file not found" in json.loads(out)["error"]


@pytest.mark.slow
def test_sigterm_ends_a_run_with_a_partial_report(tmp_path, workbench_home, demo_index, eval_set):  # noqa: F811
    import signal
    import time

    config = tmp_path / "eval.yaml"
    config.write_text(f"eval_set: {eval_set}\nsafety_sets: []\nsystems:\n"
                      "  - {name: g, model: gemma3-270m-gguf, top_k: 2, max_new_tokens: 24}\n")  # fmt: skip
    proc = subprocess.Popen([*CLI, "run", str(config), "--json"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    rows = []
    while time.monotonic() < deadline and not rows:
        rows = list(workbench_home.glob("runs/eval/*/rows.jsonl"))
        time.sleep(0.2)
    assert rows, "no answer within 240 s"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    report = json.loads(out)
    assert proc.returncode == 130 and report["status"] == "partial" and report["partial"]
    assert 1 <= report["systems"]["g"]["n_rows"] <= 3
