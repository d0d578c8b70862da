"""Render helpers of the Fine-tune page: the dataset report with its token preview, and one run's panel."""

import html
import json
import time

import plotly.graph_objects as go
import streamlit as st

from components import state
from components.widgets import badge, escape_md, human_duration
from core import jobs, paths
from core.errors import WorkbenchError
from core.evaluate import registry as evaluations
from core.evaluate.finetuned import VALIDATION, against_base
from core.finetune import runs
from core.finetune.dataset import DatasetReport, Segment
from core.rag import index as indices

TRAINED_STYLE = "background-color: rgba(33, 195, 84, 0.3); border-radius: 3px;"
MASKED_STYLE = "opacity: 0.45;"
BOX_STYLE = ("white-space: pre-wrap; font-family: monospace; font-size: 0.85rem; line-height: 1.5; padding: 0.5rem; "
             "border: 1px solid rgba(128, 128, 128, 0.3); border-radius: 0.5rem;")  # fmt: skip


def dataset_report(report: DatasetReport) -> None:
    """Show what the dataset check found: counts, row errors and the first examples as the model sees them."""
    cols = st.columns(4)
    cols[0].metric("Usable rows", f"{report.rows_ok} of {report.rows_total}")
    cols[1].metric("Train / validation", f"{report.n_train} / {report.n_val}")
    cols[2].metric("Tokens trained", f"{report.tokens_trained:,}")
    cols[3].metric("Truncated / dropped", f"{report.truncated} / {report.dropped_overlong}")
    st.caption(f"Format: {report.format} · {report.tokens_total:,} tokens in all, longest example "
               f"{report.max_tokens} · sha256 {report.sha256[:12]}")  # fmt: skip
    if report.n_val == 0:
        st.caption("No validation split (fewer than 10 usable rows, or a validation fraction of 0).")
    if report.errors:
        more = f" (the first {len(report.errors)} are listed)" if report.n_errors > len(report.errors) else ""
        st.warning(f"{report.n_errors} rows left out{more}:")
        st.dataframe([{"row": e.row, "reason": e.reason} for e in report.errors], hide_index=True, width="stretch")
    st.markdown("**Preview** — each example exactly as the model reads it: "
                + _span("highlighted text is trained on", True) + " (the answers), "
                + _span("dimmed text is only read", False) + " (prompt and chat template, masked from the loss).",
                unsafe_allow_html=True)  # fmt: skip
    for example in report.preview:
        cut = " · truncated to max length" if example.truncated else ""
        st.caption(f"Row {example.row}: {example.n_tokens} tokens, {example.n_trained} trained{cut}")
        st.markdown(preview_html(example.segments), unsafe_allow_html=True)


def preview_html(segments: list[Segment]) -> str:
    """One example as escaped HTML, trained segments highlighted, masked ones dimmed."""
    # Newlines become character references: a literal blank line would end the HTML block and let Markdown in.
    return f'<div style="{BOX_STYLE}">' + "".join(_span(s.text, s.trained) for s in segments) + "</div>"


def _span(text: str, trained: bool) -> str:
    escaped = html.escape(text).replace("\r", "&#13;").replace("\n", "&#10;")
    if trained:
        return f'<span class="ft-trained" title="trained" style="{TRAINED_STYLE}">{escaped}</span>'
    return f'<span class="ft-masked" title="masked: not in the loss" style="{MASKED_STYLE}">{escaped}</span>'


def run_panel(run_id: str) -> None:
    """One run: live progress and charts (polled while it trains), checkpoints, results, samples, delete."""
    try:
        run = runs.get_run(run_id)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at))
    st.markdown(f"**{escape_md(run.name)}** {badge(run.state)}  \n`{run.id}` · created {created}")
    if run.state == "running":
        st.fragment(_poll, run_every=2)(run_id)
    else:
        _progress(run)
    if run.state == "failed":
        st.error(run.error or run.message or "Training failed")
        _log(run)
    elif run.state == "cancelled":
        st.info("Cancelled. Resume it from a checkpoint below." if run.checkpoints else "Cancelled before a "
                "checkpoint was saved.")  # fmt: skip
    if run.state in ("cancelled", "failed", "finished") and run.checkpoints:
        _resume(run)
    if run.adapter:
        _results(run)
        if run.state == "finished":
            _evaluate_against_base(run)
    _config(run)
    _delete(run)


def _evaluate_against_base(run: runs.Run) -> None:
    """Start an evaluation of the adapter beside its base, on the run's validation split or any eval set."""
    with st.expander("Evaluate against the base"):
        shipped = [str(p.relative_to(paths.REPO_ROOT)) for p in sorted(paths.shipped_data_dir().glob("eval/*.jsonl"))
                   if "safety" not in p.name]  # fmt: skip
        choices = [VALIDATION, *shipped]
        cols = st.columns([3, 2, 1])
        eval_set = cols[0].selectbox("Eval set", choices, key=f"finetune.eval_set.{run.id}",
                                     format_func=lambda c: "this run's validation split" if c == VALIDATION
                                     else c)  # fmt: skip
        names = ["(none: plain chat)", *indices.list_names()]
        index = cols[1].selectbox("Index", names, key=f"finetune.eval_index.{run.id}",
                                  help="The adapter was trained without retrieval; an index grounds both "
                                  "systems")  # fmt: skip
        limit = cols[2].number_input("Questions (0: all)", min_value=0, value=0, step=10,
                                     key=f"finetune.eval_limit.{run.id}")  # fmt: skip
        if st.button("Evaluate against the base", icon=":material/analytics:", key=f"finetune.eval.{run.id}"):
            try:
                config = against_base(run.id, eval_set, None if index == names[0] else index, int(limit))
                started = evaluations.start(config)
            except WorkbenchError as exc:
                st.error(str(exc))
                return
            st.session_state[state.EVAL_RUN] = started.id
            st.success(f"Started evaluation {started.id}: follow it on the Evaluate page.")


def _poll(run_id: str) -> None:
    run = runs.get_run(run_id)
    if run.state != "running":  # finished, failed or cancelled: redraw the whole panel once
        st.rerun(scope="app")
    _progress(run)


def _progress(run: runs.Run) -> None:
    metrics = runs.read_metrics(run.id)
    train = [m for m in metrics if m.get("kind", "train") == "train"]
    evals = [m for m in metrics if m.get("kind") == "eval"]
    last = train[-1] if train else {}
    if run.state == "running":
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        left.progress(min(max(run.fraction or 0.0, 0.0), 1.0), text=run.message or "Starting…")
        # The same request as the Jobs page's Cancel (jobs.request_cancel): it returns at once, and the polls of
        # the job's status kill it if it has not stopped within the training job's grace period.
        if right.button("Stopping…" if run.stopping else "Cancel", key=f"finetune.cancel.{run.id}",
                        icon=":material/stop_circle:", disabled=run.stopping,
                        help="Finish the current step, save a checkpoint and stop"):  # fmt: skip
            runs.cancel(run.id, wait=False)
            st.toast("Stopping after the current step (a checkpoint is saved)")
            st.rerun(scope="app")
    max_steps = run.config.get("max_steps") or 0
    cols = st.columns(5)
    cols[0].metric("Step", f"{last.get('step', 0)}" + (f" / {max_steps}" if max_steps else ""))
    cols[1].metric("Loss", f"{last['loss']:.4f}" if last.get("loss") is not None else "—")
    cols[2].metric("Validation loss", f"{evals[-1]['eval_loss']:.4f}" if evals else "—")
    cols[3].metric("Tokens/s", f"{last['tokens_per_s']:.1f}" if last.get("tokens_per_s") is not None else "—")
    eta = last.get("eta_s") if run.state == "running" else None
    cols[4].metric("ETA", human_duration(eta) if eta is not None else "—")
    if train or evals:
        _charts(run.id, train, evals)
    if run.checkpoints:
        rows = [{"step": c.step, "saved": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.created_at)),
                 "path": c.path} for c in run.checkpoints]  # fmt: skip
        st.markdown("**Checkpoints**")
        st.dataframe(rows, hide_index=True, width="stretch")


def _charts(run_id: str, train: list[dict], evals: list[dict]) -> None:
    layout = {"height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "xaxis_title": "step"}
    loss = go.Figure()
    loss.add_scatter(x=[m["step"] for m in train], y=[m.get("loss") for m in train], mode="lines+markers",
                     name="training loss")  # fmt: skip
    if evals:
        loss.add_scatter(x=[m["step"] for m in evals], y=[m["eval_loss"] for m in evals], mode="lines+markers",
                         name="validation loss")  # fmt: skip
    loss.update_layout(title="Loss", yaxis_title="loss", **layout)
    rate = go.Figure()
    rate.add_scatter(x=[m["step"] for m in train], y=[m.get("lr") for m in train], mode="lines", name="lr")
    rate.update_layout(title="Learning rate", yaxis_title="lr", yaxis_tickformat=".1e", **layout)
    left, right = st.columns(2)
    left.plotly_chart(loss, key=f"finetune.loss.{run_id}")
    right.plotly_chart(rate, key=f"finetune.lr.{run_id}")


def _log(run: runs.Run) -> None:
    try:
        tail = jobs.status(run.job_id).log_tail if run.job_id else ""
    except jobs.JobError:
        return
    if tail:
        with st.expander("Log (last lines)"):
            st.code(tail[-3000:], language=None)


def _resume(run: runs.Run) -> None:
    steps = [c.step for c in run.checkpoints]
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    step = left.selectbox("Checkpoint", steps, index=len(steps) - 1, key=f"finetune.checkpoint.{run.id}")
    if right.button("Resume from checkpoint", icon=":material/resume:", key=f"finetune.resume.{run.id}"):
        try:
            runs.start(run.id, resume_from=str(step))
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        st.rerun()


def _results(run: runs.Run) -> None:
    result = run.result
    st.success("Training finished. Use the adapter on the Chat page with a transformers model.")
    st.markdown("**Adapter**")
    st.code(run.adapter, language=None)
    cols = st.columns(4)
    cols[0].metric("Training time", human_duration(result["train_seconds"]) if "train_seconds" in result else "—")
    cols[1].metric("Mean training loss", _fmt(result.get("train_loss")))
    cols[2].metric("Final validation loss", _fmt(result.get("eval_loss")))
    cols[3].metric("Trained tokens/s", _fmt(result.get("tokens_per_s"), ".1f"))
    samples = runs.read_samples(run.id)
    if not samples:
        if run.config.get("n_samples"):
            st.caption("No side-by-side samples: the run had no validation split and no sample prompts.")
        return
    st.markdown("**Base vs tuned**: the same prompts answered greedily without and with the adapter")
    for sample in samples:
        with st.container(border=True):
            st.markdown("**Prompt:** " + escape_md(sample["prompt"]))
            for col, label, key in zip(st.columns(2), ("Base model", "Tuned model"), ("base", "tuned"), strict=True):
                col.markdown(f"**{label}**")
                col.markdown(escape_md(sample[key]) or "_(empty)_")
                if not sample[f"{key}_stopped"]:
                    col.caption("Did not stop by itself: cut at the sample token limit.")


def _config(run: runs.Run) -> None:
    st.download_button(
        "Download config.json",
        json.dumps(run.config, indent=2),
        file_name="config.json",
        mime="application/json",
        icon=":material/download:",
        key=f"finetune.config.{run.id}",
    )
    st.caption("`workbench train config.json` starts the same run from a shell (in the repository folder).")


def _delete(run: runs.Run) -> None:
    with st.expander("Delete this run"):
        sure = st.checkbox(f"Yes, delete run {run.id} with its checkpoints and adapter", key=f"finetune.sure.{run.id}")
        running = run.state == "running"
        if st.button("Delete run", icon=":material/delete_forever:", disabled=running or not sure,
                     key=f"finetune.delete.{run.id}", help="Cancel it first" if running else None):  # fmt: skip
            try:
                runs.delete_run(run.id)
            except WorkbenchError as exc:
                st.error(str(exc))
                return
            st.rerun()


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)
