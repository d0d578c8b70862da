"""Evaluation benchmark: the overhead of an eval run over the bare work it does, and batched adapter evaluation.

Everything runs through the real code, against the named baselines, in the same process and the same run:

- Overhead (`overhead`): `core.evaluate.run.execute` on the first N questions of data/eval/demo_qa.jsonl with the
  default chat model (Gemma 3 270M GGUF) over the demo corpus, against the bare floor of the same work: for every
  question, the same retrieval calls (`Embedder.encode` + `retrieve`) and a raw `Llama.create_completion` on the
  very prompt the run used (stored in its rows), with the same settings, on the same `Llama` object. Both sides are
  timed over answering only (model loading is reported apart). Target: ours / floor <= 1.15.
- Batched adapter evaluation (`batched`): a LoRA adapter of Gemma 3 270M (a short fine-tune on
  data/finetune/medqa_demo.jsonl; `--adapter` takes a run id or folder, else the newest finished run, else one is
  trained here) evaluated on M questions with batched generation (`batch_size`), against one-at-a-time
  `model.generate` (greedy, the same prompts, stop strings and token limit) on the same loaded model. Also the
  share of batched answers identical to the answers the chat's one-at-a-time streaming path gives (an eval run
  with batch_size 1). Targets: questions/s ratio >= 2, identical >= 0.95. Measured ungrounded (the way the adapter
  was trained: short prompts) and grounded in the demo index (top 5 passages: long prompts, where prompt
  evaluation, which batching cannot shorten, dominates).

Prints one JSON object on stdout; progress goes to stderr.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
EVAL_SET = REPO / "data" / "eval" / "demo_qa.jsonl"
CORPUS = REPO / "data" / "corpus"


def log(message: str) -> None:
    sys.stderr.write(f"[evaluate] {message}\n")
    sys.stderr.flush()


def overhead(n: int) -> dict:
    from core.chat.answer import build_prompt
    from core.config import EvalConfig
    from core.evaluate import registry
    from core.evaluate.run import Resources, execute
    from core.rag.retrieve import retrieve

    cfg = EvalConfig(eval_set=str(EVAL_SET), limit=n, safety_sets=[], systems=[{"name": "default"}])
    folder = registry.create(cfg)
    t0 = time.perf_counter()
    report = execute(folder)
    total = time.perf_counter() - t0
    ours = report["wall_s"]["default"]
    rows = registry.read_rows(folder.id)
    log(f"overhead: ours {ours:.1f} s answering ({total:.1f} s with loading) on {len(rows)} questions")
    system = cfg.system(0)
    resources = Resources()
    generator, index = resources.load(system)
    stops = build_prompt(generator, "q", [])[1]
    generator.llm.create_completion("Warm-up", max_tokens=1)
    t0 = time.perf_counter()
    for row in rows:
        vector = index.embedder.encode([row["question"]])[0]
        retrieve(index.state, row["question"], vector, k=system.top_k)
        if row["prompt"]:
            generator.llm.create_completion(row["prompt"], max_tokens=system.max_new_tokens, top_p=0.95,
                                            temperature=system.temperature, stop=list(stops), seed=0)  # fmt: skip
    floor = time.perf_counter() - t0
    log(f"overhead: floor {floor:.1f} s")
    return {"questions": len(rows), "ours_s": round(ours, 2), "floor_s": round(floor, 2),
            "ratio": round(ours / floor, 3), "target_ratio_max": 1.15, "ours_with_loading_s": round(total, 2),
            "f1": report["systems"]["default"]["metrics"]["f1"],
            "n_scored": report["systems"]["default"]["n_scored"]}  # fmt: skip


def batched(adapter: str, m: int, batch_size: int, index: str | None) -> dict:
    from core.chat.answer import build_prompt
    from core.config import EvalConfig, SystemConfig
    from core.evaluate import registry
    from core.evaluate.run import Resources, execute

    def run(name: str, size: int) -> tuple[dict, list[dict]]:
        system = {"name": name, "model": "gemma3-270m", "adapter": adapter, "index": index, "batch_size": size}
        cfg = EvalConfig(eval_set=str(EVAL_SET), limit=m, safety_sets=[], systems=[system])
        folder = registry.create(cfg)
        report = execute(folder)
        return report, registry.read_rows(folder.id)

    report, rows = run("batched", batch_size)
    ours = report["wall_s"]["batched"]
    log(f"batched ({index or 'no index'}): ours {ours:.1f} s for {len(rows)} questions")
    single_report, single_rows = run("single", 1)
    log(f"batched ({index or 'no index'}): chat one at a time {single_report['wall_s']['single']:.1f} s")
    by_id = {r["id"]: r for r in single_rows}
    same = sum(r["answer"] == by_id[r["id"]]["answer"] for r in rows)
    # Baseline: one-at-a-time generate() on the same prompts, with the model the run loaded.
    system = SystemConfig(model="gemma3-270m", adapter=adapter, index=index)
    generator, _ = Resources().load(system)
    import torch

    tok, model = generator.tokenizer, generator.model
    prompts = [r["prompt"] for r in rows if r["prompt"]]
    stops = list(build_prompt(generator, "q", [])[1])  # the chat's stop strings for this model's prompt format
    t0 = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            has_bos = bool(tok.bos_token) and prompt.startswith(tok.bos_token)
            inputs = tok(prompt, return_tensors="pt", add_special_tokens=not has_bos)
            model.generate(**inputs, max_new_tokens=system.max_new_tokens, do_sample=False, temperature=None,
                           top_p=None, top_k=None, stop_strings=stops, tokenizer=tok)  # fmt: skip
    baseline = time.perf_counter() - t0
    log(f"batched ({index or 'no index'}): one-at-a-time generate {baseline:.1f} s for {len(prompts)} prompts")
    return {"index": index, "questions": len(rows), "batch_size": batch_size, "ours_s": round(ours, 2),
            "baseline_generate_s": round(baseline, 2), "ours_qps": round(len(rows) / ours, 4),
            "baseline_qps": round(len(prompts) / baseline, 4),
            "ratio": round((len(rows) / ours) / (len(prompts) / baseline), 3), "target_ratio_min": 2.0,
            "chat_one_at_a_time_s": single_report["wall_s"]["single"], "identical": same,
            "identical_share": round(same / len(rows), 4), "target_identical_min": 0.95}  # fmt: skip


def find_adapter(given: str | None) -> str | None:
    from core.evaluate.run import resolve_adapter
    from core.finetune import runs

    if given:
        return str(resolve_adapter(given))
    finished = [r for r in runs.list_runs() if r.state == "finished" and r.adapter]
    return finished[0].adapter if finished else None


def train_adapter() -> str:
    from core.config import TrainConfig
    from core.finetune import runs

    run = runs.create_run(TrainConfig(max_steps=10, batch_size=4, eval_steps=0, n_samples=0, run_name="bench"))
    runs.start(run.id)
    while runs.get_run(run.id).state == "running":
        time.sleep(2)
    return runs.get_run(run.id).adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40, help="questions for the overhead measurement")
    parser.add_argument("--batch-questions", type=int, default=24, help="questions for the batched measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--adapter", help="fine-tuning run id or adapter folder (default: newest finished run)")
    parser.add_argument("--skip-grounded", action="store_true", help="measure batching ungrounded only")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_EMBEDDED_DIR", str(REPO / "models" / "embedded"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    adapter = find_adapter(args.adapter)  # read from the user's home before switching to a scratch one
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-eval-")
    from core.config import IngestConfig
    from core.rag.ingest import ingest

    ingest(IngestConfig(index="demo", paths=[str(CORPUS)]))
    result = {"overhead": overhead(args.questions)}
    adapter = adapter or train_adapter()
    result["adapter"] = adapter
    result["batched"] = [batched(adapter, args.batch_questions, args.batch_size, None)]
    if not args.skip_grounded:
        result["batched"].append(batched(adapter, args.batch_questions, args.batch_size, "demo"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
