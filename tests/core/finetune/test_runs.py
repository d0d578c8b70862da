"""Run bookkeeping through the real runs.start path, with a job that counts instead of training (fast)."""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest

from core import jobs, paths
from core.finetune import commands, runs
from core.runfolder import RunFolder
from tests.core.finetune.conftest import tiny_config

CHILD = "tests.core.job_child"  # stands in for core.finetune.train: counts max_steps, logs a loss per step


@pytest.fixture
def counting_job(monkeypatch):
    monkeypatch.setattr(runs, "TRAIN_MODULE", CHILD)


def _slow_launches(monkeypatch, delay_s=0.3):
    """Make the real jobs.launch take a while, as a loaded machine does: the window a second start could use."""
    real_launch = jobs.launch

    def slow_launch(*args, **kwargs):
        time.sleep(delay_s)
        return real_launch(*args, **kwargs)

    monkeypatch.setattr(jobs, "launch", slow_launch)


def test_two_starts_at_once_from_two_threads_start_exactly_one(fixtures, counting_job, monkeypatch):
    _slow_launches(monkeypatch)
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=2000)
    contenders = [runs.create_run(config), runs.create_run(config)]
    barrier, outcomes = threading.Barrier(2), {}

    def press_start(run):
        barrier.wait()  # two tabs pressing Start together
        try:
            outcomes[run.id] = runs.start(run.id)
        except runs.RunError as exc:
            outcomes[run.id] = exc

    threads = [threading.Thread(target=press_start, args=(run,)) for run in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    started = [run_id for run_id, outcome in outcomes.items() if isinstance(outcome, str)]
    refused = [outcome for outcome in outcomes.values() if isinstance(outcome, runs.RunError)]
    assert len(started) == 1 and len(refused) == 1, outcomes
    winner = runs.get_run(started[0])
    assert f"Run {winner.name} ({winner.id}) is training" in str(refused[0])
    assert winner.state == "running" and winner.job_id == outcomes[winner.id]
    assert [s.id for s in jobs.list_jobs()] == [winner.job_id]
    meta = json.loads((paths.jobs_dir() / winner.job_id / "job.json").read_text())
    assert meta["stop_grace_s"] == runs.CANCEL_GRACE_S  # training declares its own, longer, stop grace
    jobs.cancel(winner.job_id, grace_s=2)


def test_two_starts_at_once_from_two_processes_start_exactly_one(fixtures, tmp_path):
    config = tiny_config(fixtures / "qa_prompt_completion.jsonl", max_steps=2000)
    contenders = [runs.create_run(config), runs.create_run(config)]
    go = tmp_path / "go"
    script = (
        "import os, sys, time; from core import jobs; from core.finetune import runs\n"
        f"runs.TRAIN_MODULE = {CHILD!r}\n"
        "real = jobs.launch\n"
        "jobs.launch = lambda *a, **k: (time.sleep(0.3), real(*a, **k))[1]\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "try:\n    print('started', runs.start(sys.argv[1]))\n"
        "except runs.RunError as exc:\n    print('refused', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, run.id], stdout=subprocess.PIPE, text=True, env=env)
             for run in contenders]  # fmt: skip
    time.sleep(1.5)  # both are waiting for the signal
    go.write_text("go")
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert sorted(o.split()[0] for o in outputs) == ["refused", "started"], outputs
    running = [run for run in runs.list_runs() if run.state == "running"]
    assert len(running) == 1 and len(jobs.list_jobs()) == 1
    assert f"({running[0].id}) is training" in next(o for o in outputs if o.startswith("refused"))
    jobs.cancel(running[0].job_id, grace_s=2)


def test_a_run_folder_records_config_versions_and_the_dataset_hash(fixtures):
    dataset = fixtures / "qa_prompt_completion.jsonl"
    config = tiny_config(dataset, run_name="shape")
    run = runs.create_run(config)
    folder = Path(run.dir)
    assert folder.parent == paths.models_dir() / "adapters"
    assert json.loads((folder / "config.json").read_text()) == config.to_dict()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "finetune" and manifest["name"] == "shape" and manifest["jobs"] == []
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset().total_seconds() == 0 and created.microsecond == 0
    assert abs(created.timestamp() - run.created_at) < 1 and abs(time.time() - run.created_at) < 60
    versions = manifest["versions"]
    for package in ("torch", "transformers", "peft", "trl"):
        assert versions[package] == metadata.version(package)
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "workbench" in versions
    expected = hashlib.sha256(dataset.read_bytes()).hexdigest()
    assert manifest["inputs"]["dataset"] == {"path": str(dataset.resolve()), "size_bytes": dataset.stat().st_size,
                                             "sha256": expected}  # fmt: skip


def test_run_folders_of_the_old_layout_still_load(fixtures):
    # Written by the earlier code: created_at a float, no kind, versions or inputs.
    old = paths.models_dir() / "adapters" / "01HOLDRUN0000000000000000A"
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps(tiny_config(fixtures / "qa_messages.jsonl").to_dict()))
    (old / "manifest.json").write_text(json.dumps({"id": old.name, "name": "old run", "created_at": 1700000000.5,
                                                   "jobs": []}))  # fmt: skip
    (old / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 2.0, "t": 1700000001.0}\n')
    run = runs.get_run(old.name)
    assert (run.name, run.state, run.created_at) == ("old run", "created", 1700000000.5)
    assert [r.id for r in runs.list_runs()] == [old.name]
    assert runs.read_metrics(old.name) == [{"kind": "train", "step": 1, "loss": 2.0, "t": 1700000001.0}]


def test_workbench_train_follows_the_metrics_of_its_own_job_from_the_run(
    fixtures, tmp_path, counting_job, capsys, monkeypatch
):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"dataset": str(fixtures / "qa_prompt_completion.jsonl"), "max_steps": 3}))
    real_start = runs.start

    def start_after_an_older_attempt(run_id, resume_from=None):
        # An earlier attempt of this run logged its own steps: following the new job must not repeat them.
        RunFolder.at(runs.get_run(run_id).dir, "finetune").append_metric(
            {"kind": "train", "step": 1, "loss": 9.0, "lr": 0.0, "tokens_per_s": 1.0, "eta_s": 0.0, "job_id": "OLD"}
        )
        return real_start(run_id, resume_from)

    monkeypatch.setattr(runs, "start", start_after_an_older_attempt)
    args = argparse.Namespace(config=str(config_file), resume=None, checkpoint="last", check=False, detach=False,
                              json=False)  # fmt: skip
    code = commands._train(args)
    printed = capsys.readouterr().out
    assert code == 0, printed
    steps = [line.split()[1] for line in printed.splitlines() if line.startswith("step")]
    assert steps == ["1", "2", "3"] and "loss 9.0000" not in printed
    assert "loss 0.5000" in printed and "100.0 tok/s" in printed
