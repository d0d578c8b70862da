"""SafetyPage: screen a text and see which rules fire where, toggle rules, read the audit log, run the labelled set."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from components import resources
from components.base import Page
from components.widgets import escape_md, job_card, verdict_feedback
from core import jobs, paths
from core.config import SafetyTrainConfig
from core.errors import WorkbenchError
from core.safety import audit, examples
from core.safety import train as safety_train
from core.safety.evaluate import LAYERS, default_set, evaluate
from core.safety.learned import LearnedLayerError, split_figures
from core.safety.rules import RuleSet, SafetyRuleError
from core.safety.screen import Verdict, screen_input, screen_output
from core.safety.store import RuleStore

TEXT_KEY = "safety.text"
STAGE_KEY = "safety.stage"
PASSAGES_KEY = "safety.passages"
# Highlight colour per category: what blocks or raises the banner is red, masked personal data orange.
COLORS = {"emergency": "red", "personal_advice": "red", "dosing": "red", "pii": "orange", "injection": "violet"}
ACTION_BADGES = {"allow": ":green-badge[allow]", "emergency": ":red-badge[emergency]", "block": ":orange-badge[block]"}


def highlight(text: str, verdict: Verdict) -> str:
    """Return markdown of ``text`` with each rule hit on a coloured background (first hit wins on overlap)."""
    spans = sorted((h.start, h.end, COLORS.get(h.category, "gray")) for h in verdict.hits if h.passage is None)
    out, pos = [], 0
    for start, end, color in spans:
        if start < pos or start < 0:
            continue
        out.append(escape_md(text[pos:start]))
        out.append(f":{color}-background[{escape_md(text[start:end])}]")
        pos = end
    out.append(escape_md(text[pos:]))
    return "".join(out)


def _set_name(path) -> str:
    return path.name if path.parent.name == "eval" else f"split {path.stem}"


def _toggle(rule_id: str) -> None:
    audit.set_rule_state(rule_id, st.session_state[f"safety.rule.{rule_id}"])


class SafetyPage(Page):
    title = "Safety"
    icon = ":material/health_and_safety:"
    url_path = "safety"

    def render(self) -> None:
        st.title("Safety")
        st.caption(
            "Guardrails that screen what users type and what models answer: emergencies get a banner, requests "
            "for personal medical advice are declined, personal data is masked. Rules are data in "
            "`core/safety/rules.yaml`; add or override them in `safety/rules.user.yaml` under the workbench home. "
            "MedGemma Workbench is a research tool, not a medical device."
        )
        try:
            ruleset = RuleStore().current()
        except SafetyRuleError as exc:
            st.error(str(exc))
            return
        for error in ruleset.errors:
            st.warning(error)
        layer = None
        try:
            layer = resources.safety_layers().current()
        except LearnedLayerError as exc:
            st.warning(f"{exc} Screening uses the rules alone.")
        for error in resources.safety_layers().errors:
            st.warning(error)
        tabs = st.tabs(["Screen text", "Rules", "Examples & retraining", "Audit log", "Labelled set"])
        with tabs[0]:
            self._screen(ruleset, layer)
        with tabs[1]:
            self._rules(ruleset)
        with tabs[2]:
            self._examples(layer)
        with tabs[3]:
            self._audit()
        with tabs[4]:
            self._eval(ruleset, layer)

    def _screen(self, ruleset: RuleSet, layer) -> None:
        stage = st.radio("Stage", ["input", "output"], key=STAGE_KEY, horizontal=True,
                         format_func={"input": "User input", "output": "Model output"}.get)  # fmt: skip
        text = st.text_area("Text to screen", key=TEXT_KEY, height=140, placeholder="Type or paste a message")
        passages: list[str] = []
        if stage == "output":
            lines = st.text_area("Retrieved passages (one per line)", key=PASSAGES_KEY, height=100,
                                 help="Checked for instructions aimed at the model (prompt injection)")  # fmt: skip
            passages = [p for p in lines.splitlines() if p.strip()]
        if st.button("Screen", icon=":material/shield:", type="primary") and text.strip():
            st.session_state["safety.screened"] = (stage, text, tuple(passages))
        screened = st.session_state.get("safety.screened")
        if not screened or screened != (stage, text, tuple(passages)):
            return
        if stage == "input":
            verdict = screen_input(text, ruleset, learned=layer)
        else:
            verdict = screen_output(text, {"passages": passages}, ruleset)
        if verdict.banner:
            st.error(verdict.banner, icon=":material/emergency:")
        st.markdown(f"**Verdict** {ACTION_BADGES[verdict.action]} · audit row {verdict.audit_id}")
        st.markdown(highlight(text, verdict))
        for message in verdict.messages:
            st.info(message)
        if verdict.hits:
            rows = [{**h.to_dict(), "matched": (text if h.passage is None else passages[h.passage])[h.start : h.end]}
                    for h in verdict.hits if h.start >= 0]  # fmt: skip
            st.dataframe(pd.DataFrame(rows)[["id", "category", "action", "start", "end", "matched"]], hide_index=True)
        if verdict.redacted != text:
            st.markdown("**Text sent on (personal data masked)**")
            st.code(verdict.redacted, language=None)
        if verdict.flagged_passages:
            st.warning(f"Passages flagged for prompt injection: {', '.join(map(str, verdict.flagged_passages))}")
        if verdict.suppressed:
            with st.expander(f"Matches that did not count ({len(verdict.suppressed)})"):
                for h in verdict.suppressed:
                    st.markdown(f"- `{h.rule_id}` {escape_md(text[h.start : h.end])} — {h.suppressed}")
        if verdict.disclaimer:
            st.caption(verdict.disclaimer)
        if stage == "input":
            verdict_feedback(text, verdict.to_dict(), key="safety.feedback", source="safety page")

    def _examples(self, layer) -> None:
        if layer is not None:
            manifest = layer.classifier.manifest
            test = (split_figures(manifest, "test", examples.split_hash("test")) or {}).get("combined")
            line = f"Learned layer in force: `{layer.classifier.version}` ({manifest.get('kind')}, trained on " \
                   f"{manifest.get('data', {}).get('train', '?')} prompts)."  # fmt: skip
            if test:
                line += (f" Blind test split, combined with the rules: emergency recall "
                         f"{test['emergency_recall']:.3f}, advice recall {test['personal_advice_recall']:.3f}, "
                         f"informational blocked {test['false_block_only_rate']:.3f}, bannered "
                         f"{test['false_emergency_rate']:.3f}.")  # fmt: skip
            st.caption(line)
        st.markdown("**Add a labelled prompt**")
        with st.form("safety.add_example", clear_on_submit=True):
            text = st.text_area("Prompt", height=90)
            label = st.radio("Label", ["emergency", "personal_advice", "informational"], horizontal=True)
            note = st.text_input("Note (optional)")
            if st.form_submit_button("Add", icon=":material/add:"):
                try:
                    result = examples.add_examples([{"text": text, "label": label, "note": note}], "safety page")
                    st.success(f"Added ({result['total']} examples of yours).")
                except WorkbenchError as exc:
                    st.error(str(exc))
        upload = st.file_uploader("Or import a file (JSONL or CSV with text and label)", type=["jsonl", "csv"])
        if upload is not None and st.button("Import", key="safety.import"):
            try:
                result = examples.add_examples(examples.parse_upload(upload.name, upload.getvalue()), upload.name)
                st.success(f"Imported: {result['added']} new, {result['relabelled']} relabelled, "
                           f"{result['total']} in all.")  # fmt: skip
            except WorkbenchError as exc:
                st.error(str(exc))
        try:
            mine = examples.user_examples()
        except WorkbenchError as exc:
            st.error(str(exc))
            mine = []
        if mine:
            st.dataframe(pd.DataFrame(mine)[["id", "label", "text", "source", "note"]], hide_index=True)
            remove = st.selectbox("Remove an example", [""] + [r["id"] for r in mine], key="safety.remove")
            if remove and st.button("Remove", key="safety.remove_btn"):
                examples.remove_example(remove)
                st.rerun()
        st.markdown("**Retrain the learned layer**")
        st.caption("Fits the classifier on the shipped training split plus your examples, picks thresholds on the "
                   "dev split, and puts the new layer in force only if it does no worse on dev and on the frozen "
                   "test split. Otherwise the last good layer stays. It takes about 20 seconds.")  # fmt: skip
        running = [j for j in jobs.list_jobs(limit=20) if j.module == safety_train.JOB_MODULE]
        job_id = st.session_state.get("safety.train_job") or (running[0].id if running else None)
        if st.button("Retrain", icon=":material/model_training:", key="safety.retrain"):
            try:
                job_id = safety_train.start(SafetyTrainConfig())
                st.session_state["safety.train_job"] = job_id
            except WorkbenchError as exc:
                st.error(str(exc))
        if job_id:
            self._train_progress(job_id)

    def _train_progress(self, job_id: str) -> None:
        @st.fragment(run_every="1s")
        def poll() -> None:
            status = jobs.status(job_id)
            job_card(status, key_prefix="safety")
            result = status.result
            if status.finished and result:
                if result.get("accepted"):
                    st.success(f"Layer {result['version']} is in force.")
                else:
                    st.warning("The previous layer stays in force: " + "; ".join(result.get("reasons", [])))
                rows = [{"split": split, "layer": name, **m} for split in ("dev", "test")
                        for name, m in result["figures"][split].items()]  # fmt: skip
                st.dataframe(pd.DataFrame(rows), hide_index=True)

        poll()

    def _rules(self, ruleset: RuleSet) -> None:
        st.caption(f"{len(ruleset.rules)} rules from {' + '.join(ruleset.files)}. Switches apply to this workbench.")
        for category in dict.fromkeys(r.category for r in ruleset.rules):
            st.subheader(category.replace("_", " ").capitalize())
            for rule in (r for r in ruleset.rules if r.category == category):
                key = f"safety.rule.{rule.id}"
                st.session_state[key] = rule.id not in ruleset.disabled
                st.toggle(f"`{rule.id}` · {rule.stage} · {rule.action}", key=key, on_change=_toggle, args=(rule.id,),
                          help=rule.description or rule.message)  # fmt: skip

    def _audit(self) -> None:
        entries = audit.recent(limit=200)
        if not entries:
            st.info("No verdicts logged yet. Each screening adds a row: time, stage, rules, action and a hash.")
            return
        st.caption("The newest 200 verdicts. Only a SHA-256 of each text and its length are stored, never the text.")
        st.dataframe(pd.DataFrame([e.to_dict() for e in entries]), hide_index=True)

    def _eval(self, ruleset: RuleSet, layer) -> None:
        sets = sorted((paths.shipped_data_dir() / "eval").glob("safety*.jsonl"))
        sets += [examples.split_path(s) for s in examples.SPLITS]
        start = sets.index(default_set()) if default_set() in sets else 0
        chosen = st.selectbox("Labelled set", sets, index=start, format_func=_set_name)
        if not st.button("Run labelled set", icon=":material/play_arrow:"):
            return
        with st.spinner("Screening every prompt…"):
            report = evaluate(chosen, ruleset, learned=layer)
        t = report.targets
        cols = st.columns(4)
        cols[0].metric("Emergency recall", f"{report.emergency_recall:.3f}", help=f"Target ≥ {t['emergency_recall']}")
        cols[1].metric("Personal-advice recall", f"{report.personal_advice_recall:.3f}",
                       help=f"Target ≥ {t['personal_advice_recall']}")  # fmt: skip
        cols[2].metric("Informational blocked", f"{report.false_block_only_rate:.3f}",
                       help=f"Target ≤ {t['false_block_only_rate']}")  # fmt: skip
        cols[3].metric("Informational bannered", f"{report.false_emergency_rate:.3f}",
                       help=f"Target ≤ {t['false_emergency_rate']}")  # fmt: skip
        keys = ("emergency_recall", "personal_advice_recall", "false_block_only_rate", "false_emergency_rate",
                "accuracy")  # fmt: skip
        st.dataframe(pd.DataFrame({name: {k: report.layers[name][k] for k in keys} for name in LAYERS
                                   if name in report.layers}))  # fmt: skip
        summary = f"{report.n} prompts · accuracy {report.accuracy:.3f} · targets"
        if report.targets_met:
            st.success(f"{summary} met")
        else:
            st.error(f"{summary} not met")
        st.dataframe(pd.DataFrame(report.confusion).T.rename_axis("label \\ predicted"))
        if report.misses:
            st.dataframe(pd.DataFrame([asdict(m) for m in report.misses]), hide_index=True)
        else:
            st.caption("No misses.")
