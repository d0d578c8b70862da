"""Small render helpers shared by pages: sizes, durations, status badges and the job card."""

import time

import streamlit as st

from core import jobs
from core.mdescape import escape_markdown

STATE_COLORS = {
    "ready": "green",
    "done": "green",
    "finished": "green",
    "running": "blue",
    "not_prepared": "orange",
    "offline": "orange",
    "cancelled": "gray",
    "created": "gray",
    "missing": "red",
    "invalid": "red",
    "failed": "red",
}


def config_number(container, config_cls: type, name: str, label: str, value=None, **kwargs):
    """A number input for one config field: range, step, help and default come from the field's metadata."""
    spec = config_cls.spec(name)
    value = spec.default if value is None else value
    kind = float if isinstance(spec.default, float) or isinstance(spec.step, float) else int

    def typed(x):
        return None if x is None else kind(x)

    step = typed(spec.step) if spec.step is not None else (1 if kind is int else None)
    return container.number_input(label, min_value=typed(spec.low), max_value=typed(spec.high), value=typed(value),
                                  step=step, help=spec.help, **kwargs)  # fmt: skip


def config_slider(container, config_cls: type, name: str, label: str, value=None, high=None, **kwargs):
    """A slider for one config field (``high`` may narrow the declared range for a friendlier scale)."""
    spec = config_cls.spec(name)
    value = spec.default if value is None else value
    kind = float if isinstance(spec.default, float) else int
    top = kind(high if high is not None else spec.high)
    return container.slider(label, kind(spec.low), top, min(kind(value), top),
                            step=kind(spec.step) if spec.step else None, help=spec.help, **kwargs)  # fmt: skip


def badge(state: str) -> str:
    color = STATE_COLORS.get(state, "gray")
    return f":{color}-badge[{state.replace('_', ' ')}]"


def human_size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "—"
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def show_notice(key: str) -> None:
    """Show (once) a message a button callback left in session_state before the rerun."""
    notice = st.session_state.pop(key, None)
    if notice:
        kind, text = notice
        {"success": st.success, "error": st.error, "info": st.info}[kind](text)


def job_card(status: jobs.JobStatus, key_prefix: str) -> None:
    """Draw one job: title, state, progress, elapsed time, message, artifacts, log tail and a cancel button."""
    with st.container(border=True):
        left, right = st.columns([4, 1])
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.created_at))
        left.markdown(
            f"**{escape_markdown(status.title)}** {badge(status.state)}  \n`{status.id}` · started {started}"
        )
        if status.state == "running":
            stopping = status.stop_requested_at is not None
            right.button(
                "Stopping…" if stopping else "Cancel",
                key=f"{key_prefix}.cancel.{status.id}",
                icon=":material/stop_circle:",
                on_click=_cancel,
                args=(status.id,),
                disabled=stopping,
                help=f"Ask the job to stop; it is killed if it has not ended {status.stop_grace_s:g} s later",
            )
        elapsed = human_duration(status.elapsed_s)
        eta = ""
        if status.state == "running" and status.fraction and status.fraction > 0.02:
            eta = f" · about {human_duration(status.elapsed_s * (1 - status.fraction) / status.fraction)} left"
        if status.fraction is not None or status.state == "running":
            st.progress(status.fraction or 0.0, text=f"{status.message or status.state} · {elapsed}{eta}")
        else:
            st.caption(f"{status.message or status.state} · {elapsed}")
        if status.error:
            st.error(status.error)
        for artifact in status.artifacts:
            st.markdown(f"- {artifact.get('kind', 'file')}: `{artifact['path']}`")
        if status.log_tail:
            with st.expander("Log (last lines)", expanded=status.state == "failed"):
                st.code(status.log_tail[-3000:], language=None)


def _cancel(job_id: str) -> None:
    # Never wait here (a training job may need a minute to save): the polls of jobs.status enforce the grace.
    jobs.request_cancel(job_id)


def escape_md(text: str) -> str:
    """Escape Markdown so user, model or corpus text shows literally."""
    return escape_markdown(text)


def hit_card(rank: int, hit, context: dict | None = None) -> None:
    """Draw one retrieved passage: file, page/record, scores, text, and the passage in context."""
    where = f"page {hit.page}" if hit.page else (f"record {hit.record}" if hit.record else "")
    ranks = []
    if hit.dense_rank:
        ranks.append(f"dense #{hit.dense_rank} (cos {hit.dense_score:.3f})")
    if hit.bm25_rank:
        ranks.append(f"BM25 #{hit.bm25_rank} ({hit.bm25_score:.2f})")
    with st.container(border=True):
        parts = [
            f"**[{rank}] {escape_md(hit.source)}**",
            where,
            f"chars {hit.start}–{hit.end}",
            f"score {hit.score:.4f}",
        ]
        st.markdown(" · ".join(p for p in parts if p))
        st.caption(" · ".join(ranks) or f"cosine {hit.dense_score:.3f}")
        st.markdown(escape_md(hit.text))
        if context:
            with st.expander("Show in context"):
                text = context["text"]
                before, span, after = text[: hit.start], text[hit.start : hit.end], text[hit.end :]
                st.markdown(escape_md(before[-1500:]) + " :orange-background[" + escape_md(span) + "] "
                            + escape_md(after[:1500]))  # fmt: skip


_LABEL_NAMES = {"emergency": "Emergency", "personal_advice": "Personal advice", "informational": "Informational"}


def verdict_summary(verdict: dict) -> str:
    """One line on how an input verdict was reached: action, the layer that fired, rules and learned scores."""
    parts = [f"Screen: **{verdict.get('action', '?')}**"]
    if verdict.get("layer"):
        parts.append(f"by the {verdict['layer']} layer")
    rules = list(dict.fromkeys(r["id"] for r in verdict.get("rules") or []))
    parts.append("rules: " + (", ".join(f"`{r}`" for r in rules) if rules else "none"))
    learned = verdict.get("learned")
    if learned:
        s, t = learned["scores"], learned["thresholds"]
        parts.append(f"learned: emergency {s['emergency']:.2f} (fires at {t['emergency']:.2f}), advice "
                     f"{s['personal_advice']:.2f} (fires at {t['personal_advice']:.2f})")  # fmt: skip
    for error in verdict.get("learned_errors") or []:
        parts.append(f"learned layer unavailable: {escape_md(error)}")
    return " · ".join(parts)


def verdict_feedback(text: str, verdict: dict, key: str, source: str = "chat verdict") -> None:
    """Show how a question was screened, with a "Verdict wrong?" popover that stores a labelled example."""
    from core.errors import WorkbenchError
    from core.safety import examples
    from core.safety.policy import ACTION_LABEL

    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(verdict_summary(verdict))
    with right.popover("Verdict wrong?", icon=":material/flag:"):
        st.caption("Add this question, with the label it should have had, to your safety examples. They join "
                   "training the next time the learned layer is retrained (Safety page).")  # fmt: skip
        labels = list(_LABEL_NAMES)
        current = ACTION_LABEL.get(verdict.get("action"), "informational")
        others = [lab for lab in labels if lab != current]
        label = st.radio("It should have been", others, format_func=_LABEL_NAMES.get, key=f"{key}.label")
        if st.button("Add as a labelled example", key=f"{key}.add", icon=":material/add:"):
            try:
                result = examples.add_examples([{"text": text, "label": label, "note": "verdict was wrong"}],
                                               source)  # fmt: skip
            except WorkbenchError as exc:
                st.error(str(exc))
            else:
                st.success(f"Stored ({result['total']} examples of yours). Retrain on the Safety page.")
