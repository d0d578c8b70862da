"""`workbench train` and `workbench runs` as scripts use them (--json output, exit codes, clear errors)."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.core.finetune.conftest import FIXTURES

CLI = [sys.executable, "-m", "core.cli"]


def run(*args, timeout=600):
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def test_check_reports_rows_and_preview_as_json(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: {FIXTURES / 'qa_alpaca.json'}\nmax_length: 64\n")
    code, out, err = run("train", str(config), "--check", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and report["format"] == "alpaca" and report["rows_ok"] == 3
    assert report["preview"][0]["segments"][-1]["trained"] is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lora_r: 0\n", "rank must be at least 1"),
        ("lora_r: 600\n", "lora_r must be between 1 and 512 (got 600)"),
        ("quantization: 16bit\n", "quantization must be one of none, 4bit, 8bit (got '16bit')"),
        ("precision: fp16\n", "fp16 is refused"),
        ("learning_rate: 0.0002\nepochs: 3\n", "Unknown TrainConfig keys: epochs"),
        ("dataset: [unclosed\n", "not valid YAML or JSON"),
    ],
)
def test_bad_configs_fail_with_a_json_error(tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    code, out, _ = run("train", str(config), "--json")
    assert code == 2 and message in json.loads(out)["error"]


def test_missing_dataset_and_base_model_are_named(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": str(tmp_path / "none.jsonl")}))
    code, out, _ = run("train", str(config), "--check", "--json")
    assert code == 2 and "Dataset file not found" in json.loads(out)["error"]
    config.write_text(json.dumps({"base_model": str(tmp_path / "no-model")}))
    code, out, _ = run("train", str(config), "--check", "--json")
    assert code == 2 and "Base model not found" in json.loads(out)["error"]


@pytest.mark.slow
def test_train_follows_the_job_to_a_finished_adapter_then_runs_list_it(tmp_path):
    data = tmp_path / "qa.jsonl"
    shutil.copy(FIXTURES / "qa_prompt_completion.jsonl", data)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": str(data), "max_steps": 2, "batch_size": 2, "val_fraction": 0.0,
                                  "n_samples": 0, "save_steps": 1, "run_name": "cli-test"}))  # fmt: skip
    code, out, err = run("train", str(config), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "finished" and result["adapter"].endswith("adapter")
    assert result["result"]["steps"] == 2 and [c["step"] for c in result["checkpoints"]] == [1, 2]
    code, out, _ = run("runs", "list", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["cli-test"]
    code, out, _ = run("runs", "show", result["run_id"], "--json")
    shown = json.loads(out)
    assert [m["step"] for m in shown["metrics"] if m["kind"] == "train"] == [1, 2]
    code, out, _ = run("train", "--resume", result["run_id"], "--checkpoint", "7", "--json")
    assert code == 2 and "No complete checkpoint '7'" in json.loads(out)["error"]


@pytest.mark.slow
def test_a_run_config_reruns_directly_with_python_m(tmp_path):
    """`python -m core.finetune.train <run>/config.json` (what `accelerate launch` runs) trains in that folder."""
    from core.config import TrainConfig
    from core.finetune import runs

    data = tmp_path / "qa.jsonl"
    shutil.copy(FIXTURES / "qa_prompt_completion.jsonl", data)
    run = runs.create_run(TrainConfig(dataset=str(data), max_steps=1, batch_size=2, val_fraction=0.0, n_samples=0))
    done = subprocess.run([sys.executable, "-m", "core.finetune.train", f"{run.dir}/config.json"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in open(f"{run.dir}/progress.jsonl")]
    assert events[-1]["type"] == "done" and events[-1]["result"]["steps"] == 1
    assert runs.get_run(run.id).adapter is not None


def test_relative_paths_in_a_config_file_resolve_next_to_it(tmp_path, monkeypatch):
    from core.finetune.runs import load_config_file

    (tmp_path / "sets").mkdir()
    shutil.copy(FIXTURES / "qa_messages.jsonl", tmp_path / "sets" / "mine.jsonl")
    config = tmp_path / "run.yaml"
    config.write_text("dataset: sets/mine.jsonl\n")
    monkeypatch.chdir("/")
    assert load_config_file(config).dataset == str(tmp_path / "sets" / "mine.jsonl")
    config.write_text("dataset: data/finetune/medqa_demo.jsonl\n")  # shipped data stays repository-relative
    assert load_config_file(config).dataset == "data/finetune/medqa_demo.jsonl"
