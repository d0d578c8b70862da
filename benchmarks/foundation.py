"""Foundation benchmark: model inspection, job start-up and the idempotent `prepare`, each against a baseline.

- GGUF validation: our header reader (core.models.formats.inspect_gguf) vs gguf.GGUFReader on the same file.
- Job start-up: launch() to the first progress event read back by status(), vs a bare subprocess.Popen of the same
  interpreter running `import core.jobs` (the floor any child-process runner pays).
- Embedded models: a second `prepare()` when everything is ready (what `make run` pays on every start).

Prints one JSON object.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed(fn, repeat):
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main():
    os.environ.setdefault("WORKBENCH_EMBEDDED_DIR", str(REPO / "models" / "embedded"))
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-")
    import gguf

    from core import jobs
    from core.models import embedded
    from core.models.formats import inspect_gguf

    gemma = embedded.model_path("gemma3-270m-gguf")
    ours_inspect = timed(lambda: inspect_gguf(gemma), 5)
    base_inspect = timed(lambda: gguf.GGUFReader(gemma, "r").tensors, 2)

    def job_to_first_event():
        job_id = jobs.launch("tests.core.job_child", {"steps": 1, "out_dir": os.environ["WORKBENCH_HOME"]})
        while not jobs.status(job_id).metrics:
            time.sleep(0.005)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ours_job = timed(job_to_first_event, 5)
    base_job = timed(lambda: subprocess.run([sys.executable, "-c", "import core.jobs"], env=env, check=True), 5)
    prepare_s = timed(embedded.prepare, 3)

    print(json.dumps({
        "gguf_validate_s": {"ours": round(ours_inspect, 4), "baseline_gguf_reader": round(base_inspect, 4),
                            "speedup": round(base_inspect / ours_inspect, 1), "file": gemma.name},
        "job_start_to_first_event_s": {"ours": round(ours_job, 4), "baseline_bare_popen": round(base_job, 4),
                                       "ratio": round(ours_job / base_job, 2)},
        "prepare_when_ready_s": round(prepare_s, 4),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
