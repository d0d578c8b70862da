"""Tables of a report for the CLI and the page, and the rows as CSV (the drill-down's export)."""

import csv
import io
import json

CSV_COLUMNS = ("system", "id", "question", "references", "tags", "status", "error", "answer", "exact_match", "f1",
               "rouge1", "rouge2", "rougeL", "answer_words", "retrieval_doc_mrr", "cites_gold", "supported_rate",
               "blocked", "covered", "sources", "elapsed_ms")  # fmt: skip


def summary_rows(report: dict, names: tuple[str, ...] | None = None) -> list[dict]:
    """One dict per system: scored/total rows and each metric (all when ``names`` is None)."""
    rows = []
    for system in report.get("system_order") or list(report.get("systems", {})):
        s = report["systems"][system]
        metrics = s["metrics"]
        chosen = names or tuple(sorted(metrics))
        rows.append({"system": system, "scored": f"{s['n_scored']} of {s['n_expected']}", "failed": s["n_failed"],
                     **{n: metrics.get(n) for n in chosen}})  # fmt: skip
    return rows


def summary_table(report: dict, names: tuple[str, ...]) -> str:
    """A plain-text table of the systems' headline metrics."""
    rows = summary_rows(report, names)
    header = ["system", "scored", *names]
    lines = ["  ".join(f"{h:<22}" if i == 0 else f"{h:>12}" for i, h in enumerate(header))]
    for row in rows:
        cells = [f"{row['system']:<22}", f"{row['scored']:>12}"]
        cells += [f"{row[n]:>12.4f}" if isinstance(row[n], float) else f"{'-':>12}" for n in names]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def rows_csv(rows: list[dict]) -> str:
    """Every row as CSV (lists joined with ' | ', sources as file#page)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in rows:
        scores = r.get("scores") or {}
        writer.writerow({
            "system": r["system"], "id": r["id"], "question": r["question"],
            "references": " | ".join(r.get("references", [])), "tags": " | ".join(r.get("tags", [])),
            "status": r["status"], "error": r.get("error", ""), "answer": r.get("answer", ""),
            **{k: scores.get(k) for k in ("exact_match", "f1", "rouge1", "rouge2", "rougeL", "answer_words")},
            "retrieval_doc_mrr": ((r.get("retrieval") or {}).get("doc") or {}).get("mrr"),
            "cites_gold": (r.get("citations") or {}).get("cites_gold"),
            "supported_rate": (r.get("citations") or {}).get("supported_rate"),
            "blocked": r.get("blocked"), "covered": r.get("covered"),
            "sources": " | ".join(f"{s['source']}#{s['page']}" if s.get("page") else str(s["source"])
                                  for s in r.get("sources", [])),
            "elapsed_ms": r.get("elapsed_ms"),
        })  # fmt: skip
    return buffer.getvalue()


def report_json(report: dict, rows: list[dict]) -> str:
    """The report with its rows, as one JSON document."""
    return json.dumps({**report, "rows": rows}, indent=2, ensure_ascii=False)
