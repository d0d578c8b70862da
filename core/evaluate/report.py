"""The report of an evaluation run, rebuilt from its per-row JSONL.

It holds metrics per system and per tag, cost, safety, and paired comparisons of every system against the
baseline (the first).

A row that failed (model error, timeout, empty answer) scores 0 on every metric and stays in the denominator; the
report says how many rows each system scored. A partial run (cancelled, or interrupted) is reported from the rows
it has, labelled partial, and compares systems only on the questions both answered.
"""

from collections import Counter, defaultdict
from statistics import mean, median

from core.evaluate import metrics as M
from core.evaluate import stats

ROW_METRICS = ("exact_match", "f1", "rouge1", "rouge2", "rougeL", "answer_words")
# Metrics where a smaller number is better (the comparison table says which way is better).
LOWER_IS_BETTER = {"citations.dropped_labels", "citations.not_covered", "failed"}


def row_values(row: dict, k: int) -> dict[str, float]:
    """Every per-row metric of one row, flat (``f1``, ``retrieval.doc.mrr``, ``citations.cites_gold`` ...)."""
    values = {name: float(row["scores"].get(name, 0.0)) for name in ROW_METRICS}
    for level in ("doc", "page"):
        scores = (row.get("retrieval") or {}).get(level)
        if scores is not None:
            values.update({f"retrieval.{level}.{name}": float(v) for name, v in scores.items()})
    if row.get("gold_sources") or row.get("citations") is not None:
        values.update({f"citations.{name}": float(v) for name, v in (row.get("citations") or {}).items()})
    values["failed"] = float(row["status"] != "ok")
    return values


def _aggregate(rows: list[dict], k: int) -> dict:
    per_row = [row_values(r, k) for r in rows]
    names = sorted({name for v in per_row for name in v})
    out: dict = {}
    for name in names:
        present = [v[name] for v in per_row if name in v]
        out[name] = mean(present) if present else None
    out["bleu"] = M.bleu_from_stats([r["bleu_stats"] for r in rows]) if rows else 0.0
    return out


def system_summary(rows: list[dict], expected: int, k: int) -> dict:
    """One system's figures from its rows.

    Args:
        rows: The system's rows (one per question answered, failed ones included).
        expected: Questions the run meant to ask this system.
        k: The system's top_k (names the retrieval metrics).

    Returns:
        ``n_rows``, ``n_scored``, ``n_failed``, ``failures`` by reason, ``metrics``, ``by_tag``, ``cost`` and
        ``safety`` (verdict counts on the answers).
    """
    failures = Counter(r.get("error_kind") or "error" for r in rows if r["status"] != "ok")
    tags = sorted({t for r in rows for t in r.get("tags", [])})
    by_tag = {}
    for tag in tags:
        tagged = [r for r in rows if tag in r.get("tags", [])]
        by_tag[tag] = {"n": len(tagged), **_aggregate(tagged, k)}
    timings = [r.get("timings") or {} for r in rows if r["status"] == "ok"]
    ttft = [t["first_token_ms"] for t in timings if "first_token_ms" in t]
    speed = [t["tokens_per_s"] for t in timings if t.get("tokens_per_s")]
    cost = {
        "first_token_ms_median": median(ttft) if ttft else None,
        "first_token_ms_mean": mean(ttft) if ttft else None,
        "tokens_per_s_mean": mean(speed) if speed else None,
        "answer_ms_mean": mean(r["elapsed_ms"] for r in rows) if rows else None,
        "total_s": round(sum(r["elapsed_ms"] for r in rows) / 1000, 2),
        "batched": any((r.get("timings") or {}).get("batched") for r in rows),
    }
    safety = {
        "input": dict(Counter(r["safety"]["input"] for r in rows if r.get("safety"))),
        "output": dict(Counter(r["safety"]["output"] for r in rows if r.get("safety") and r["safety"]["output"])),
        "blocked": sum(bool(r.get("blocked")) for r in rows),
        "masked": sum(bool((r.get("safety") or {}).get("masked")) for r in rows),
    }
    return {"n_expected": expected, "n_rows": len(rows), "n_scored": sum(r["status"] == "ok" for r in rows),
            "n_failed": sum(r["status"] != "ok" for r in rows), "failures": dict(failures),
            "metrics": _aggregate(rows, k), "by_tag": by_tag, "cost": cost, "safety": safety}  # fmt: skip


def compare(a_rows: list[dict], b_rows: list[dict], k_a: int, k_b: int, resamples: int, confidence: float,
            seed: int) -> dict:  # fmt: skip
    """Paired comparison of two systems on the questions both answered: bootstrap intervals and McNemar on EM.

    Returns:
        ``n``, ``metrics`` (name → interval of b − a), ``mcnemar_exact_match`` and ``warnings``.
    """
    a_by, b_by = {r["id"]: r for r in a_rows}, {r["id"]: r for r in b_rows}
    ids = [i for i in a_by if i in b_by]
    if not ids:
        return {"n": 0, "metrics": {}, "mcnemar_exact_match": None, "warnings": ["No question answered by both."]}
    a_list, b_list = [a_by[i] for i in ids], [b_by[i] for i in ids]
    a_vals, b_vals = [row_values(r, k_a) for r in a_list], [row_values(r, k_b) for r in b_list]
    indices = stats.resample_indices(len(ids), resamples, seed)
    out = {}
    for name in sorted(set(a_vals[0]) & set(b_vals[0])):
        both = [(x[name], y[name]) for x, y in zip(a_vals, b_vals, strict=True) if name in x and name in y]
        if len(both) != len(ids):
            continue  # a metric some rows lack (page-level retrieval) is compared only where every row has it
        out[name] = stats.paired_bootstrap([p[0] for p in both], [p[1] for p in both], indices=indices,
                                           confidence=confidence, seed=seed).to_dict()  # fmt: skip
    out["bleu"] = stats.paired_bootstrap([r["bleu_stats"] for r in a_list], [r["bleu_stats"] for r in b_list],
                                         statistic=M.bleu_from_stats, indices=indices, confidence=confidence,
                                         seed=seed).to_dict()  # fmt: skip
    test = stats.mcnemar_exact([r["scores"]["exact_match"] >= 1 for r in a_list],
                               [r["scores"]["exact_match"] >= 1 for r in b_list])  # fmt: skip
    return {"n": len(ids), "metrics": out, "mcnemar_exact_match": test.to_dict(),
            "warnings": stats.separation_warnings(len(ids), test)}  # fmt: skip


def _references(rows: list[dict], system: str) -> list[list[str]]:
    return [r["references"] for r in rows if r["system"] == system]


def build_report(config: dict, rows: list[dict], expected: int, status: str, extra: dict | None = None) -> dict:
    """The whole report of a run from its rows.

    Args:
        config: The run's EvalConfig as a dict.
        rows: Every row of ``rows.jsonl``.
        expected: Questions per system.
        status: ``complete``, ``partial`` (cancelled or interrupted) or ``failed``.
        extra: More fields (eval set, bad rows, safety sets, load errors).

    Returns:
        The report dict written to ``report.json``.
    """
    from core.config import EvalConfig

    cfg = EvalConfig.from_dict(config)
    systems = cfg.system_configs()
    by_system: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_system[row["system"]].append(row)
    summaries = {s.label: system_summary(by_system.get(s.label, []), expected, s.top_k) for s in systems}
    comparisons = []
    base = systems[0]
    for other in systems[1:]:
        result = compare(by_system.get(base.label, []), by_system.get(other.label, []), base.top_k, other.top_k,
                         cfg.resamples, cfg.confidence, cfg.seed)  # fmt: skip
        comparisons.append({"a": base.label, "b": other.label, **result})
    complete = status == "complete" and all(s["n_rows"] == expected for s in summaries.values())
    return {
        "status": status if status != "complete" or complete else "partial",
        "partial": not complete,
        "n_questions": expected,
        "systems": summaries,
        "system_order": [s.label for s in systems],
        "comparisons": comparisons,
        "signatures": M.signatures(k=systems[0].top_k, references=_references(rows, systems[0].label)),
        "lower_is_better": sorted(LOWER_IS_BETTER),
        **(extra or {}),
    }
