"""A real job module for the job-runner tests: reports steps, and can crash, raise, spawn or ignore SIGTERM.

Launched by ``core.finetune.runs.start`` (config ``{"run_dir", "resume_from"}``) it stands in for the training job:
it counts the run's ``max_steps`` slowly instead of training, logging a loss per step in the run's metrics log.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.jobs import JobCancelled, run_child
from core.runfolder import RunFolder


def work(config, reporter):
    run = None
    if "run_dir" in config:  # started as a training run's job
        run = RunFolder.at(config["run_dir"], "finetune")
        config = {"steps": run.config()["max_steps"], "sleep_s": 0.05, "out_dir": config["run_dir"]}
    mode = config.get("mode", "ok")
    if mode == "spawn":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path(config["pid_file"]).write_text(str(grandchild.pid))
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    steps = config.get("steps", 3)
    try:
        for step in range(steps):
            print(f"working on step {step + 1}", flush=True)
            reporter.progress((step + 1) / steps, f"step {step + 1} of {steps}")
            if run is None:
                reporter.metric(step + 1, loss=1.0 / (step + 1))
            else:  # as the training job logs: once, in the run's own log
                run.append_metric({"kind": "train", "step": step + 1, "loss": 1.0 / (step + 1), "lr": 1e-3,
                                   "tokens_per_s": 100.0, "eta_s": 0.05 * (steps - step - 1),
                                   "job_id": os.environ["WORKBENCH_JOB_ID"]})  # fmt: skip
            time.sleep(config.get("sleep_s", 0.01))
            if mode == "crash" and step == 1:
                os._exit(3)  # die without reporting, like a segfault or the OOM killer
            if mode == "raise" and step == 1:
                raise ValueError("boom at step 2")
    except JobCancelled:
        if mode == "slow_stop":  # like a training job saving its checkpoint: clean-up takes a while
            print("cleaning up", flush=True)
            time.sleep(config["cleanup_s"])
            Path(config["out_dir"], "cleaned-up").write_text("ok")
            print("cleanup done", flush=True)
        raise
    out = Path(config["out_dir"]) / "result.txt"
    out.write_text("ok")
    reporter.artifact(out, kind="result")
    return {"steps": steps}


if __name__ == "__main__":
    run_child(work)
