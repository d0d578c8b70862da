"""The `workbench` command as scripts use it: JSON output, exit codes, clear errors."""

import json
import subprocess
import sys

from core.cli import main
from core.models import embedded

CLI = [sys.executable, "-m", "core.cli"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_models_list_json_has_the_registry_fields():
    out = run("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {"name", "role", "format", "path", "size_bytes", "status", "detail", "embedded"} <= set(rows[0])
    assert {r["name"]: r["status"] for r in rows}["smollm2-135m-instruct"] == "ready"


def test_models_add_bad_path_is_a_clear_json_error(tmp_path):
    out = run("models", "add", str(tmp_path / "missing.gguf"), "--json")
    assert out.returncode == 2
    assert "does not exist" in json.loads(out.stdout)["error"]
    assert len(json.loads(run("models", "list", "--json").stdout)) == len(embedded.SPECS)


def test_models_add_check_remove_round_trip(capsys):
    path = str(embedded.model_path("smollm2-135m-instruct"))
    assert main(["models", "add", path, "--name", "smol-copy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ready"
    assert main(["models", "check", "smol-copy"]) == 0
    assert "smol-copy" in capsys.readouterr().out
    assert main(["models", "remove", "smol-copy"]) == 0
    assert main(["models", "remove", "smol-copy"]) == 2
    assert "No model named" in capsys.readouterr().err


def test_models_add_uncached_hub_id_exits_3_with_offline_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert main(["models", "add", "google/medgemma-4b-it", "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "offline"


def test_models_prepare_when_ready_prints_the_models():
    out = run("models", "prepare", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["prepared"] == []


def test_jobs_list_and_unknown_job(capsys):
    assert main(["jobs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["jobs", "show", "nope", "--json"]) == 2
    assert "No job" in json.loads(capsys.readouterr().out)["error"]
