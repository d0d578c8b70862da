"""Render helpers of the Evaluate page: one run's progress, report, comparison charts and per-question drill-down."""

import json

import plotly.graph_objects as go
import streamlit as st

from components import state
from components.widgets import badge, escape_md
from core.errors import WorkbenchError
from core.evaluate import registry
from core.evaluate.export import report_json, rows_csv, summary_rows

HEADLINE = ("exact_match", "f1", "bleu", "rouge1", "rouge2", "rougeL")
RATE_LABELS = {"exact_match": "Exact match", "f1": "Token F1", "bleu": "BLEU (0–100)", "rouge1": "ROUGE-1",
               "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}  # fmt: skip


def run_panel(run_id: str) -> None:
    """One evaluation run: live progress while it runs, then (or meanwhile, as partial) its report."""
    try:
        run = registry.get_run(run_id)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**{escape_md(run.name)}** {badge(run.status)}  \n`{run.id}` · created {run.created_at} · "
                f"{run.n_questions} questions · systems: {escape_md(', '.join(run.systems))}")  # fmt: skip
    if run.status in ("running", "created"):
        st.fragment(_poll, run_every=2)(run_id)
        return
    _report(run_id)


def _poll(run_id: str) -> None:
    run = registry.get_run(run_id)
    if run.status not in ("running", "created"):
        st.rerun()  # the whole page redraws with the finished report
    st.progress(run.fraction or 0.0, text=run.message or "Starting…")
    if st.button("Cancel", icon=":material/stop:", key=f"eval.cancel.{run_id}",
                 help="Stops after the current answer and writes a partial report"):  # fmt: skip
        registry.cancel(run_id)
        st.rerun()
    report = registry.load_report(run_id)
    if any(s["n_rows"] for s in report["systems"].values()):
        st.caption("So far (partial):")
        st.dataframe(summary_rows(report, HEADLINE), hide_index=True, width="stretch")


def _report(run_id: str) -> None:
    try:
        report = registry.load_report(run_id)
        rows = registry.read_rows(run_id)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    if report.get("partial"):
        done = ", ".join(f"{name}: {s['n_rows']} of {s['n_expected']}" for name, s in report["systems"].items())
        st.warning(f"Partial report ({report['status']}): not every question was answered ({done}). Figures cover "
                   "the answered questions; comparisons use the questions both systems answered.")  # fmt: skip
    if report.get("error"):
        st.error(report["error"])
    for name, error in (report.get("load_errors") or {}).items():
        st.error(f"{name} did not load, so each of its questions counts as failed: {error}")
    bad = (report.get("eval_set") or {}).get("bad_rows") or []
    if bad:
        with st.expander(f"{len(bad)} eval set rows were left out"):
            st.dataframe(bad, hide_index=True, width="stretch")
    st.markdown("**Scores** (a failed row scores 0 and stays in the denominator; *scored* counts the rows that "
                "produced an answer)")  # fmt: skip
    st.dataframe(summary_rows(report, HEADLINE + ("answer_words", "retrieval.doc.recall@5", "retrieval.doc.mrr",
                                                  "citations.cites_gold", "citations.supported_rate")),
                 hide_index=True, width="stretch")  # fmt: skip
    st.plotly_chart(_bars(report), width="stretch", key=f"eval.bars.{run_id}")
    for comparison in report.get("comparisons", []):
        _comparison(comparison, run_id)
    tabs = st.tabs(["Per tag", "Retrieval & citations", "Cost", "Safety", "Signatures"])
    with tabs[0]:
        _per_tag(report)
    with tabs[1]:
        st.dataframe(_metric_table(report, ("retrieval.", "citations.")), hide_index=True, width="stretch")
    with tabs[2]:
        st.dataframe([{"system": n, **s["cost"], "wall_s": (report.get("wall_s") or {}).get(n)}
                      for n, s in report["systems"].items()], hide_index=True, width="stretch")  # fmt: skip
    with tabs[3]:
        _safety(report)
    with tabs[4]:
        st.json(report.get("signatures", {}), expanded=False)
    _drill_down(report, rows, run_id)
    cols = st.columns([1, 1, 1, 3])
    cols[0].download_button("Rows (CSV)", rows_csv(rows), file_name=f"eval-{run_id}.csv", icon=":material/download:")
    cols[1].download_button("Report (JSON)", report_json(report, rows), file_name=f"eval-{run_id}.json",
                            icon=":material/download:")  # fmt: skip
    if cols[2].button("Delete run", icon=":material/delete:", key=f"eval.delete.{run_id}"):
        try:
            registry.delete(run_id)
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        st.session_state[state.EVAL_NOTICE] = ("info", f"Deleted evaluation {run_id}.")
        st.rerun()


def _bars(report: dict) -> go.Figure:
    fig = go.Figure()
    for name in report["system_order"]:
        metrics = report["systems"][name]["metrics"]
        values = [(metrics.get(m) or 0.0) / (100 if m == "bleu" else 1) for m in HEADLINE]
        fig.add_bar(name=name, x=[RATE_LABELS[m].replace(" (0–100)", " / 100") for m in HEADLINE], y=values)
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=30, b=10), yaxis_range=[0, 1],
                      title="Generation metrics by system")  # fmt: skip
    return fig


def _comparison(c: dict, run_id: str) -> None:
    st.markdown(f"**{escape_md(c['b'])} − {escape_md(c['a'])}** on {c['n']} paired questions: 95% paired bootstrap "
                "intervals (BLEU recomputed on every resample)")  # fmt: skip
    for warning in c.get("warnings", []):
        st.warning(warning)
    table = [{"metric": name, "a": m["a"], "b": m["b"], "b − a": m["diff"], "low": m["low"], "high": m["high"],
              "differs": "yes" if m["excludes_zero"] else "no"}
             for name, m in sorted(c["metrics"].items())]  # fmt: skip
    st.dataframe(table, hide_index=True, width="stretch")
    test = c.get("mcnemar_exact_match")
    if test:
        st.caption(f"McNemar's exact test on exact match: {test['only_a']} questions only {c['a']} got right, "
                   f"{test['only_b']} only {c['b']}; p = {test['p_value']:.4g}")  # fmt: skip
    shown = [m for m in HEADLINE if m in c["metrics"] and m != "bleu"]
    fig = go.Figure()
    diffs = [c["metrics"][m] for m in shown]
    errors = dict(type="data", symmetric=False, array=[d["high"] - d["diff"] for d in diffs],
                  arrayminus=[d["diff"] - d["low"] for d in diffs])  # fmt: skip
    fig.add_scatter(x=[d["diff"] for d in diffs], y=[RATE_LABELS[m] for m in shown], mode="markers", error_x=errors)
    fig.add_vline(x=0, line_dash="dot")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=f"{c['b']} − {c['a']} (95% CI)")
    st.plotly_chart(fig, width="stretch", key=f"eval.ci.{run_id}.{c['a']}.{c['b']}")


def _per_tag(report: dict) -> None:
    metric = st.selectbox("Metric", HEADLINE, format_func=RATE_LABELS.get, key="eval.tag_metric")
    tags = sorted({t for s in report["systems"].values() for t in s["by_tag"]})
    table = []
    for tag in tags:
        row = {"tag": tag}
        for name in report["system_order"]:
            entry = report["systems"][name]["by_tag"].get(tag)
            row[f"{name} (n)"] = entry["n"] if entry else 0
            row[name] = entry.get(metric) if entry else None
        table.append(row)
    st.dataframe(table, hide_index=True, width="stretch")


def _metric_table(report: dict, prefixes: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in report["system_order"]:
        metrics = report["systems"][name]["metrics"]
        rows.append({"system": name, **{k: v for k, v in sorted(metrics.items()) if k.startswith(prefixes)}})
    return rows


def _safety(report: dict) -> None:
    st.dataframe([{"system": n, "input verdicts": json.dumps(s["safety"]["input"]),
                   "output verdicts": json.dumps(s["safety"]["output"]), "blocked": s["safety"]["blocked"],
                   "masked questions": s["safety"]["masked"]} for n, s in report["systems"].items()],
                 hide_index=True, width="stretch")  # fmt: skip
    sets = report.get("safety_sets") or {}
    if sets:
        st.caption("Labelled safety sets, screened by the safety layer in force during the run:")
        st.dataframe([{"set": path, **figures} for path, figures in sets.items()], hide_index=True, width="stretch")


def _drill_down(report: dict, rows: list[dict], run_id: str) -> None:
    st.markdown("**Questions**")
    order = report["system_order"]
    by_id: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_id.setdefault(row["id"], {})[row["system"]] = row
    cols = st.columns([2, 2, 2])
    pair = None
    if len(order) > 1:
        only_diff = cols[0].checkbox("Only where two systems differ", key=f"eval.diff.{run_id}")
        if only_diff:
            a = cols[1].selectbox("System A", order, index=0, key=f"eval.diff_a.{run_id}")
            b = cols[2].selectbox("System B", order, index=1, key=f"eval.diff_b.{run_id}")
            pair = (a, b)
    shown = []
    for qid, systems in by_id.items():
        if pair and (pair[0] not in systems or pair[1] not in systems or
                     systems[pair[0]]["answer"] == systems[pair[1]]["answer"]):  # fmt: skip
            continue
        first = next(iter(systems.values()))
        entry = {"id": qid, "question": first["question"], "tags": ", ".join(first.get("tags", []))}
        for name in order:
            if name in systems:
                entry[f"{name} F1"] = systems[name]["scores"]["f1"]
                entry[f"{name} status"] = systems[name]["status"]
        shown.append(entry)
    st.caption(f"{len(shown)} of {len(by_id)} questions")
    st.dataframe(shown, hide_index=True, width="stretch", height=260)
    if not shown:
        return
    ids = [e["id"] for e in shown]
    qid = st.selectbox("Open a question", ids, key=f"{state.EVAL_DRILL}.{run_id}",
                       format_func=lambda i: f"{i}: {by_id[i][next(iter(by_id[i]))]['question'][:90]}")  # fmt: skip
    systems = by_id[qid]
    first = next(iter(systems.values()))
    st.markdown(f"**Question:** {escape_md(first['question'])}")
    st.markdown("**References:** " + " · ".join(escape_md(r) for r in first["references"]))
    if first.get("gold_sources"):
        st.caption("Gold sources: " + ", ".join(f"{g['file']}" + (f" p.{g['page']}" if g.get("page") else "")
                                               for g in first["gold_sources"]))  # fmt: skip
    for name, column in zip(order, st.columns(len(order)), strict=True):
        row = systems.get(name)
        with column:
            st.markdown(f"**{escape_md(name)}**")
            if row is None:
                st.caption("not answered (partial run)")
                continue
            if row["status"] != "ok":
                st.error(f"Failed ({row.get('error_kind')}): {row.get('error')}")
            st.markdown(escape_md(row["answer"]) or "*(empty)*")
            s = row["scores"]
            st.caption(f"EM {s['exact_match']:.0f} · F1 {s['f1']:.3f} · ROUGE-L {s['rougeL']:.3f} · "
                       f"{s['answer_words']:.0f} words · {row['elapsed_ms'] / 1000:.1f} s")  # fmt: skip
            if row.get("blocked"):
                st.caption("The safety layer blocked this answer.")
            for src in row.get("sources", []):
                page = f" p.{src['page']}" if src.get("page") else ""
                st.caption(f"[{src['label']}] {escape_md(str(src['source']))}{page} · score {src['score']:.3f}")
            for cit in row.get("citation_list", []):
                kind = "attributed" if cit["attributed"] else "written"
                st.caption(f"{cit['label']} ({kind}, support {cit['support']:.2f}): {escape_md(cit['sentence'])}")
