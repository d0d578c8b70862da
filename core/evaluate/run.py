"""Run an evaluation: every question of an eval set through each system's chat turn, scored row by row.

A run is a run folder (``runs/eval/<ulid>/``: ``config.json``, ``manifest.json``, ``rows.jsonl`` appended as each
answer is scored, ``report.json``) listed in SQLite. Models and indices are loaded once per run, all before the first
question (an index deleted mid-run cannot pull the floor away). A system that cannot load (a missing model or index)
gets a failed row per question with the reason, and the other systems go on. A cancelled run writes a partial
report, labelled so; a run killed outright is reported from ``rows.jsonl`` as interrupted.

Every answer comes from :func:`core.chat.turn.run_turn`, the Chat page's own path (input screen, retrieval,
passage cleaning, generation, output screen, citation check). transformers models answer in batches
(:mod:`core.evaluate.batch`) through the same turn code. ``python -m core.evaluate.run CONFIG.json`` is the job.
"""

import logging
import os
import threading
import time
from pathlib import Path

from core import jobs
from core.chat.turn import run_turn
from core.config import ChatConfig, EvalConfig, SystemConfig
from core.errors import WorkbenchError
from core.evaluate import metrics as M
from core.evaluate import registry
from core.evaluate.batch import PromptRecorder, Replay, generate_batch, record_prompt
from core.evaluate.report import build_report
from core.evaluate.sets import EvalItem, load_eval_set
from core.fileio import append_jsonl, atomic_write_json, read_jsonl
from core.paths import REPO_ROOT
from core.runfolder import RunFolder

logger = logging.getLogger(__name__)

EMPTY_ANSWER = "The model returned no answer."


def resolve_path(path: str) -> Path:
    """A path from a config: as given when it exists, else relative to the repository (the demo files)."""
    p = Path(path).expanduser()
    return p if p.exists() or p.is_absolute() else REPO_ROOT / p


def resolve_adapter(adapter: str | None) -> Path | None:
    """An adapter folder from a fine-tuning run id or a folder path.

    Raises:
        WorkbenchError: If it names neither.
    """
    if not adapter:
        return None
    path = Path(adapter).expanduser()
    if (path / "adapter_config.json").is_file():
        return path
    from core.finetune import runs

    run = runs.get_run(adapter)  # raises RunError naming the id
    if not run.adapter:
        raise WorkbenchError(f"Fine-tuning run {adapter} has no saved adapter yet ({run.state})")
    return Path(run.adapter)


class Resources:
    """Generators, indices and the embedder of one run, each loaded once and shared by the systems using it."""

    def __init__(self) -> None:
        """Nothing is loaded until a system asks."""
        self.generators: dict = {}
        self.indices: dict = {}
        self.embedders: dict = {}

    def load(self, system: SystemConfig) -> tuple[object, object]:
        """The system's generator and opened index (None without an index).

        Raises:
            WorkbenchError: If the model, adapter or index cannot be loaded.
        """
        from core.llm.backends import load_generator
        from core.rag import index as store
        from core.rag.embed import Embedder
        from core.rag.opening import open_index

        adapter = resolve_adapter(system.adapter)
        key = (system.model, str(adapter) if adapter else None)
        if key not in self.generators:
            self.generators[key] = load_generator(system.model, adapter=adapter)
        index = None
        if system.index is not None:
            if system.index not in self.indices:
                state = store.load(system.index)
                name = state.manifest["embedding"]["model"]
                if name not in self.embedders:
                    self.embedders[name] = Embedder(name)
                self.indices[system.index] = open_index(system.index, embedder=self.embedders[name], state=state)
            index = self.indices[system.index]
        return self.generators[key], index


def chat_config(system: SystemConfig) -> ChatConfig:
    """The chat settings a system's turns run with."""
    return ChatConfig(model=system.model, index=system.index, top_k=system.top_k, temperature=system.temperature,
                      max_new_tokens=system.max_new_tokens, min_relevance=system.min_relevance,
                      adapter=system.adapter)  # fmt: skip


def score_row(system: SystemConfig, item: EvalItem, answer: dict | None, error: str = "", error_kind: str = "",
              elapsed_ms: float = 0.0) -> dict:  # fmt: skip
    """The stored row of one question for one system: the answer, its status and every per-row metric.

    A failed row (error, timeout, empty answer) is scored as an empty answer: 0 on every metric, still counted.
    """
    text = (answer or {}).get("answer", "")
    if not error and answer is not None and text.strip() in ("", EMPTY_ANSWER):
        error, error_kind = "The model returned an empty answer", "empty"
    ok = not error
    prediction = text if ok else ""
    scores = M.generation_scores(prediction, item.references)
    stats = M.bleu_stats([prediction], [item.references])[0]
    # Retrieval ran even when the model then failed (timeout, empty answer): its figures count what it found. A
    # system that never ran (load failure) has no sources and scores 0 there too.
    sources = (answer or {}).get("sources", [])
    retrieval = None
    if item.gold_sources and system.index is not None:
        retrieved = [{"source": M.source_name(s["source"]), "page": s.get("page")} for s in sources]
        retrieval = {"doc": M.retrieval_scores(retrieved, item.gold_sources, system.top_k)}
        if all(g.get("page") is not None for g in item.gold_sources):
            retrieval["page"] = M.retrieval_scores(retrieved, item.gold_sources, system.top_k, by_page=True)
    citations = None  # an ungrounded system cites nothing; a failed answer scores 0 on every citation metric
    if system.index is not None:
        citations = M.citation_scores(answer, item.gold_sources) if ok else dict.fromkeys(M.CITATION_METRICS, 0.0)
    safety = None
    if answer is not None:
        verdicts = answer.get("safety") or {}
        safety = {"input": (verdicts.get("input") or {}).get("action"),
                  "output": (verdicts.get("output") or {}).get("action"),
                  "input_rules": list((verdicts.get("input") or {}).get("rule_ids") or []),
                  "masked": (verdicts.get("input") or {}).get("redacted", item.question) != item.question}  # fmt: skip
    return {
        "system": system.label, "id": item.id, "line": item.line, "question": item.question,
        "references": item.references, "gold_sources": item.gold_sources, "tags": item.tags,
        "status": "ok" if ok else "failed", "error": error, "error_kind": error_kind if not ok else "",
        "answer": text, "blocked": bool((answer or {}).get("blocked")), "covered": (answer or {}).get("covered", True),
        "scores": scores, "bleu_stats": stats, "retrieval": retrieval, "citations": citations, "safety": safety,
        "sources": [{k: s.get(k) for k in ("label", "source", "page", "score", "flagged")} for s in sources],
        "citation_list": [{k: c.get(k) for k in ("label", "source", "page", "support", "attributed", "sentence")}
                          for c in (answer or {}).get("citations", [])] if ok else [],
        "unsupported_sentences": (answer or {}).get("unsupported_sentences", []) if ok else [],
        "timings": (answer or {}).get("timings", {}),
        "elapsed_ms": round(elapsed_ms, 1),
        "prompt": (answer or {}).get("prompt", ""),  # what the model read (benchmarks/evaluate.py replays it)
    }  # fmt: skip


def answer_one(item: EvalItem, system: SystemConfig, generator, index, timeout_s: float, rules, layers) -> dict:
    """One question through the chat turn, stopped after ``timeout_s``; returns its scored row."""
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.daemon = True
    started = time.perf_counter()
    final = None
    timer.start()
    try:
        for event in run_turn(item.question, chat_config(system), generator, index, stop=stop, rules=rules,
                              layers=layers):  # fmt: skip
            if event["type"] == "final":
                final = event["answer"]
    except WorkbenchError as exc:
        return score_row(system, item, None, str(exc), "error", (time.perf_counter() - started) * 1000)
    finally:
        timer.cancel()
    elapsed = (time.perf_counter() - started) * 1000
    if stop.is_set():
        return score_row(system, item, final.to_dict() if final else None, f"Stopped after {timeout_s:g} s",
                         "timeout", elapsed)  # fmt: skip
    return score_row(system, item, final.to_dict(), elapsed_ms=elapsed)


def answer_batched(items: list[EvalItem], system: SystemConfig, generator, index, timeout_s: float, rules, layers,
                   emit) -> None:  # fmt: skip
    """Answer ``items`` with batched generation (transformers models); ``emit(row)`` is called per question.

    The turn runs twice per question through ``run_turn``: once to record its prompt, once to check and screen the
    batch output (see :mod:`core.evaluate.batch`).
    """
    cfg = chat_config(system)
    prompts: dict[int, tuple[str, object]] = {}
    for n, item in enumerate(items):
        recorder = PromptRecorder(generator)
        t0 = time.perf_counter()
        try:
            prompt, gen, final = record_prompt(run_turn(item.question, cfg, recorder, index, rules=rules,
                                                        layers=layers), recorder)  # fmt: skip
        except WorkbenchError as exc:
            emit(score_row(system, item, None, str(exc), "error", (time.perf_counter() - t0) * 1000))
            continue
        if prompt is None:  # blocked or not covered: the turn ended before the model was asked
            emit(score_row(system, item, final.to_dict(), elapsed_ms=(time.perf_counter() - t0) * 1000))
            continue
        prompts[n] = (prompt, gen)
    pending = sorted(prompts)
    for start in range(0, len(pending), system.batch_size * 4):  # rows reach rows.jsonl every few batches
        group = pending[start : start + system.batch_size * 4]
        gen = prompts[group[0]][1]
        try:
            outputs = generate_batch(generator, [prompts[n][0] for n in group], gen, system.batch_size, timeout_s)
        except WorkbenchError as exc:
            for n in group:
                emit(score_row(system, items[n], None, str(exc), "error"))
            continue
        replay = Replay(generator, {prompts[n][0]: out.text for n, out in zip(group, outputs, strict=True)})
        for n, out in zip(group, outputs, strict=True):
            t0 = time.perf_counter()
            try:
                final = None
                for event in run_turn(items[n].question, cfg, replay, index, rules=rules, layers=layers):
                    if event["type"] == "final":
                        final = event["answer"]
            except WorkbenchError as exc:
                emit(score_row(system, items[n], None, str(exc), "error"))
                continue
            record = final.to_dict()
            share_s = out.batch_ms / 1000 / out.batch_size
            record["timings"] = {**record["timings"], "batched": True, "batch_size": out.batch_size,
                                 "batch_ms": out.batch_ms, "new_tokens": out.new_tokens,
                                 "tokens_per_s": round(out.new_tokens / share_s, 1) if share_s else 0.0}  # fmt: skip
            first_ms = (time.perf_counter() - t0) * 1000 + share_s * 1000
            if out.timed_out:
                emit(score_row(system, items[n], record, f"Stopped after {timeout_s:g} s", "timeout", first_ms))
            else:
                emit(score_row(system, items[n], record, elapsed_ms=first_ms))


def execute(folder: RunFolder, progress=None) -> dict:
    """Run the evaluation configured in ``folder`` and write its report.

    Args:
        folder: The run folder (its ``config.json`` is the EvalConfig).
        progress: ``progress(fraction, message, **fields)`` (a job's reporter, or the CLI's printer).

    Returns:
        The report (also in ``report.json``).

    Raises:
        JobCancelled / KeyboardInterrupt: After the partial report is written.
    """
    from core.safety import RuleStore
    from core.safety.learned import LayerStore

    progress = progress or (lambda *a, **k: None)
    cfg = EvalConfig.from_dict(folder.config())
    systems = cfg.system_configs()
    eval_set = load_eval_set(resolve_path(cfg.eval_set))
    items = eval_set.select(cfg.tags, cfg.limit)
    rows_path = folder.path / "rows.jsonl"
    extra = {"eval_set": {"path": eval_set.path, "n_rows": len(eval_set.items), "selected": len(items),
                          "bad_rows": eval_set.bad_rows}}  # fmt: skip
    registry.record(folder, "running", cfg, len(items))
    # A run in the CLI's own process has no job: its pid tells a later reader whether it is still going.
    folder.update_manifest(runner_pid=os.getpid(), runner_start=jobs.process_start_ticks(os.getpid()))
    total = len(items) * len(systems)
    done = {"n": 0}
    rows: list[dict] = []

    def emit(row: dict) -> None:
        append_jsonl(rows_path, row)
        rows.append(row)
        done["n"] += 1
        progress(done["n"] / total if total else 1.0, f"{row['system']}: {done['n']} of {total} answers",
                 done=done["n"], total=total, system=row["system"], question=row["id"],
                 status=row["status"])  # fmt: skip

    resources, load_errors = Resources(), {}
    rules, layers = RuleStore(), LayerStore()
    try:
        loaded = {}
        for system in systems:  # everything is loaded before the first question
            progress(0.0, f"Loading {system.label}")
            try:
                loaded[system.label] = resources.load(system)
            except WorkbenchError as exc:
                load_errors[system.label] = str(exc)
        for system in systems:
            if system.label in load_errors:
                for item in items:
                    emit(score_row(system, item, None, load_errors[system.label], "load"))
                continue
            generator, index = loaded[system.label]
            started = time.perf_counter()
            if getattr(generator, "kind", "") == "hf" and system.batch_size > 1 and system.temperature == 0:
                answer_batched(items, system, generator, index, cfg.timeout_s, rules, layers, emit)
            else:
                for item in items:
                    emit(answer_one(item, system, generator, index, cfg.timeout_s, rules, layers))
            extra.setdefault("wall_s", {})[system.label] = round(time.perf_counter() - started, 2)
        extra["load_errors"] = load_errors
        progress(0.99, "Scoring the labelled safety sets")
        extra["safety_sets"] = safety_sets(cfg.safety_sets, rules, layers)
    except BaseException as exc:
        kind = "partial" if isinstance(exc, (jobs.JobCancelled, KeyboardInterrupt)) else "failed"
        extra["load_errors"] = load_errors
        if kind == "failed":
            extra["error"] = f"{type(exc).__name__}: {exc}"
        finish(folder, cfg, rows, len(items), kind, extra)
        raise
    return finish(folder, cfg, rows, len(items), "complete", extra)


def safety_sets(paths: list[str], rules, layers) -> dict:
    """Recall and false-block figures of the safety layer in force on each labelled set (missing sets noted)."""
    from core.safety.evaluate import evaluate
    from core.safety.learned import LearnedLayerError

    try:
        layer = layers.current()
    except LearnedLayerError:
        layer = None
    out = {}
    for path in paths:
        try:
            report = evaluate(resolve_path(path), rules=rules.current(), learned=layer)
        except WorkbenchError as exc:
            out[path] = {"error": str(exc)}
            continue
        out[path] = {k: report.to_dict()[k] for k in ("n", "emergency_recall", "personal_advice_recall",
                                                      "false_block_rate", "false_emergency_rate", "accuracy",
                                                      "targets_met", "learned_version")}  # fmt: skip
    return out


def finish(folder: RunFolder, cfg: EvalConfig, rows: list[dict], expected: int, status: str, extra: dict) -> dict:
    """Write ``report.json`` and record the run's end in SQLite and its manifest.

    Returns:
        The report.
    """
    report = build_report(cfg.to_dict(), rows, expected, status, {"run_id": folder.id, **extra})
    atomic_write_json(folder.path / "report.json", report)
    folder.update_manifest(status=report["status"], ended_at=time.time())
    registry.record(folder, report["status"], cfg, expected, report)
    return report


def read_rows(folder: RunFolder) -> list[dict]:
    """The rows a run stored (a line torn by a crash is skipped)."""
    path = folder.path / "rows.jsonl"
    return read_jsonl(path, skip_bad_lines=True) if path.exists() else []


def _work(config: dict, reporter: jobs.Reporter) -> dict:
    folder = RunFolder.at(config["run_dir"], "eval")
    report = execute(folder, reporter.progress)
    return {
        "run_id": folder.id,
        "status": report["status"],
        "systems": {
            name: {"f1": s["metrics"].get("f1"), "n_scored": s["n_scored"]} for name, s in report["systems"].items()
        },
    }


if __name__ == "__main__":
    jobs.run_child(_work)
