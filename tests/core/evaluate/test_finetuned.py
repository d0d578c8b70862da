"""Evaluate against the base, on a real (one-step) fine-tuning run of the embedded Gemma 3 270M."""

import json
from pathlib import Path

import pytest

from core.errors import WorkbenchError
from core.evaluate import registry
from core.evaluate.finetuned import against_base
from core.evaluate.run import execute
from core.evaluate.sets import load_eval_set
from core.finetune import runs
from core.finetune.train import train
from core.jobs import Reporter
from tests.conftest import REPO_ROOT
from tests.core.finetune.conftest import tiny_config

pytestmark = pytest.mark.slow


def _trained_run(dataset: Path, **overrides):
    config = tiny_config(dataset, max_steps=1, **overrides)
    run = runs.create_run(config)
    train({"run_dir": run.dir, "resume_from": None}, Reporter(Path(run.dir) / "attempt"))
    return runs.get_run(run.id)


def test_the_adapter_is_evaluated_beside_its_base_on_the_runs_validation_split(tmp_path):
    rows = [json.loads(line) for line in (REPO_ROOT / "tests/fixtures/finetune/qa_prompt_completion.jsonl").open()]
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text("".join(json.dumps({**r, "prompt": f"{r['prompt']} ({n})"}) + "\n"
                               for n in range(2) for r in rows))  # fmt: skip
    run = _trained_run(dataset, val_fraction=0.25)
    cfg = against_base(run.id, max_new_tokens=16)
    base, tuned = cfg.system_configs()
    assert (base.model, base.adapter, base.index) == ("gemma3-270m", None, None)
    assert (tuned.model, tuned.adapter) == ("gemma3-270m", run.id)
    questions = load_eval_set(cfg.eval_set).items
    assert len(questions) == 4 and all(q.tags == ["validation"] for q in questions)
    held_out = {f"{r['prompt']} ({n})": r["completion"] for n in range(2) for r in rows}
    assert all(held_out[q.question] == q.references[0] for q in questions)  # the split the run held out
    cfg = type(cfg).from_dict({**cfg.to_dict(), "limit": 2, "safety_sets": []})
    folder = registry.create(cfg)
    report = execute(folder)
    assert set(report["systems"]) == {base.label, tuned.label}
    assert all(s["n_rows"] == 2 for s in report["systems"].values())
    assert report["comparisons"][0]["b"] == tuned.label and report["comparisons"][0]["n"] == 2


def test_a_run_without_a_validation_split_asks_for_an_eval_set(tmp_path):
    run = _trained_run(REPO_ROOT / "tests/fixtures/finetune/qa_prompt_completion.jsonl")  # 8 rows: no split
    with pytest.raises(WorkbenchError, match="held out no validation examples"):
        against_base(run.id)
    cfg = against_base(run.id, eval_set=str(REPO_ROOT / "data/eval/demo_qa.jsonl"), index="demo")
    assert cfg.system(1).adapter == run.id and cfg.system(0).index == "demo"
