"""The one run-folder shape: roots per kind, config + manifest, hashed inputs, locked manifest updates, metrics."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime

import pytest

from core import paths
from core.runfolder import RunFolder, RunFolderError, kind_root, now_iso, parse_time, sha256_file


def test_each_kind_has_its_root_under_the_home(workbench_home):
    assert kind_root("finetune") == workbench_home / "models" / "adapters"
    assert kind_root("eval") == workbench_home / "runs" / "eval"
    assert kind_root("export") == workbench_home / "models" / "exports"
    with pytest.raises(RunFolderError, match="Unknown run kind 'merge'"):
        kind_root("merge")


def test_create_writes_config_and_a_manifest_with_hashed_inputs(tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several read pieces and a partial last one
    folder = RunFolder.create("eval", {"k": 5}, inputs={"eval_set": data}, name="first")
    assert folder.path.parent == kind_root("eval") and len(folder.id) == 26
    assert folder.config() == {"k": 5}
    manifest = folder.manifest()
    assert manifest["kind"] == "eval" and manifest["name"] == "first" and manifest["id"] == folder.id
    assert manifest["inputs"]["eval_set"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert manifest["inputs"]["eval_set"]["size_bytes"] == data.stat().st_size
    assert set(manifest["versions"]) == {"python", "torch", "transformers", "peft", "trl", "workbench"}
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert RunFolder.open("eval", folder.id) == folder
    assert [f.id for f in RunFolder.newest_first("eval")] == [folder.id]


def test_one_timestamp_format_and_older_float_times_still_read():
    stamp = now_iso()
    assert stamp.endswith("+00:00") and len(stamp) == len("2025-01-31T12:00:00+00:00")
    assert parse_time("2025-01-31T12:00:00+00:00") == 1738324800.0
    assert parse_time(1700000000.5) == 1700000000.5 and parse_time(None) == 0.0


def test_open_refuses_bad_and_unknown_ids():
    with pytest.raises(RunFolderError, match="Invalid run id"):
        RunFolder.open("finetune", "../../etc")
    with pytest.raises(RunFolderError, match="No fine-tuning run with id 01NOSUCH"):
        RunFolder.open("finetune", "01NOSUCH")


def test_manifest_updates_from_two_processes_lose_nothing(workbench_home):
    folder = RunFolder.create("export", {}, jobs=[])
    code = (
        "import sys; from core.runfolder import RunFolder\n"
        "folder = RunFolder.open('export', sys.argv[1])\n"
        "for i in range(40):\n    folder.add_job(f'{sys.argv[2]}-{i}'); folder.update_manifest(**{sys.argv[2]: i})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, folder.id, name], env=env) for name in ("a", "b")]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    manifest = folder.manifest()
    assert sorted(manifest["jobs"]) == sorted(f"{name}-{i}" for name in "ab" for i in range(40))
    assert manifest["a"] == manifest["b"] == 39 and manifest["kind"] == "export"


def test_one_metrics_log_appended_and_read_in_order(tmp_path):
    folder = RunFolder.create("finetune", {})
    folder.append_metric({"kind": "train", "step": 1, "loss": 2.0})
    folder.append_metric({"kind": "eval", "step": 1, "eval_loss": 1.5, "t": 5.0})
    with open(folder.path / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "st')  # a writer killed mid-line
    records = folder.metrics()
    assert [r["kind"] for r in records] == ["train", "eval"] and records[1]["t"] == 5.0
    assert isinstance(records[0]["t"], float)
    assert json.loads((folder.path / "metrics.jsonl").read_text().splitlines()[0])["loss"] == 2.0


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"")
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()
