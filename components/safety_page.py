"""SafetyPage: screen a text and see which rules fire where, toggle rules, read the audit log, run the labelled set."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from components.base import Page
from components.widgets import escape_md
from core import paths
from core.safety import audit
from core.safety.evaluate import default_set, evaluate
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
        screen_tab, rules_tab, audit_tab, eval_tab = st.tabs(["Screen text", "Rules", "Audit log", "Labelled set"])
        with screen_tab:
            self._screen(ruleset)
        with rules_tab:
            self._rules(ruleset)
        with audit_tab:
            self._audit()
        with eval_tab:
            self._eval(ruleset)

    def _screen(self, ruleset: RuleSet) -> None:
        stage = st.radio("Stage", ["input", "output"], key=STAGE_KEY, horizontal=True,
                         format_func={"input": "User input", "output": "Model output"}.get)  # fmt: skip
        text = st.text_area("Text to screen", key=TEXT_KEY, height=140, placeholder="Type or paste a message")
        passages: list[str] = []
        if stage == "output":
            lines = st.text_area("Retrieved passages (one per line)", key=PASSAGES_KEY, height=100,
                                 help="Checked for instructions aimed at the model (prompt injection)")  # fmt: skip
            passages = [p for p in lines.splitlines() if p.strip()]
        if not st.button("Screen", icon=":material/shield:", type="primary") or not text.strip():
            return
        if stage == "input":
            verdict = screen_input(text, ruleset)
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

    def _eval(self, ruleset: RuleSet) -> None:
        sets = sorted((paths.shipped_data_dir() / "eval").glob("safety*.jsonl"))
        chosen = st.selectbox("Labelled set", sets, index=sets.index(default_set()) if default_set() in sets else 0,
                              format_func=lambda p: p.name)  # fmt: skip
        if not st.button("Run labelled set", icon=":material/play_arrow:"):
            return
        report = evaluate(chosen, ruleset)
        left, middle, right = st.columns(3)
        left.metric("Emergency recall", f"{report.emergency_recall:.3f}", help="Target ≥ 0.95")
        middle.metric("Personal-advice recall", f"{report.personal_advice_recall:.3f}", help="Target ≥ 0.90")
        right.metric("False-block rate", f"{report.false_block_rate:.3f}", help="Target ≤ 0.05",
                     delta=f"blocked {report.false_block_only_rate:.3f}, banner {report.false_emergency_rate:.3f}",
                     delta_color="off")  # fmt: skip
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
