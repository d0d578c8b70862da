"""A real job module for the job-runner tests: reports steps, and can crash, raise, spawn or ignore SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.jobs import run_child


def work(config, reporter):
    mode = config.get("mode", "ok")
    if mode == "spawn":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path(config["pid_file"]).write_text(str(grandchild.pid))
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    steps = config.get("steps", 3)
    for step in range(steps):
        print(f"working on step {step + 1}", flush=True)
        reporter.progress((step + 1) / steps, f"step {step + 1} of {steps}")
        reporter.metric(step + 1, loss=1.0 / (step + 1))
        time.sleep(config.get("sleep_s", 0.01))
        if mode == "crash" and step == 1:
            os._exit(3)  # die without reporting, like a segfault or the OOM killer
        if mode == "raise" and step == 1:
            raise ValueError("boom at step 2")
    out = Path(config["out_dir"]) / "result.txt"
    out.write_text("ok")
    reporter.artifact(out, kind="result")
    return {"steps": steps}


if __name__ == "__main__":
    run_child(work)
