"""EvaluatePage: an eval set and systems → EvalConfig → a background evaluation job; runs with their reports."""

from pathlib import Path

import streamlit as st
import yaml

from components import state
from components.base import Page
from components.evaluate_widgets import run_panel
from components.widgets import config_number, show_notice
from core import paths
from core.config import ConfigError, EvalConfig, SystemConfig
from core.errors import WorkbenchError
from core.evaluate import registry
from core.evaluate.run import resolve_path
from core.evaluate.sets import load_eval_set
from core.finetune import runs as finetune_runs
from core.models import registry as models
from core.rag import index as indices
from core.uploads import save_upload

UPLOAD_KEY = "eval.upload"
NO_INDEX = "(none: plain chat)"
NO_ADAPTER = "(none)"


class EvaluatePage(Page):
    title = "Evaluate"
    icon = ":material/analytics:"
    url_path = "evaluate"

    def render(self) -> None:
        st.title("Evaluate")
        st.caption(
            "Score systems (a chat model, an index and the chat settings) on an eval set. Every answer goes through "
            "the chat's own path: retrieval, safety screens and citation checks. The figures describe the answers "
            "users get. Not a medical device: scores measure agreement with references, not clinical safety."
        )
        show_notice(state.EVAL_NOTICE)
        st.subheader("New evaluation")
        config = self._form()
        left, right, _ = st.columns([1, 1, 3])
        start = left.button("Start evaluation", type="primary", icon=":material/play_arrow:", disabled=config is None)
        if config is not None:
            right.download_button("Config (YAML)", yaml.safe_dump(config.to_dict(), sort_keys=False),
                                  file_name="eval.yaml", icon=":material/download:",
                                  help="The same file `workbench eval run CONFIG` takes")  # fmt: skip
        if start:
            self._start(config)
        st.divider()
        self._runs()

    def _form(self) -> EvalConfig | None:
        h = EvalConfig.help
        sets = _eval_sets()
        if st.session_state.get(state.EVAL_SET) not in sets:
            default = EvalConfig().eval_set
            st.session_state[state.EVAL_SET] = default if default in sets else sets[0]
        cols = st.columns(2)
        eval_set = cols[0].selectbox("Eval set", sets, key=state.EVAL_SET, help=h("eval_set"),
                                     format_func=_set_label)  # fmt: skip
        cols[1].file_uploader("…or upload a JSONL eval set", type=["jsonl"], key=UPLOAD_KEY, on_change=_save_upload)
        try:
            loaded = load_eval_set(resolve_path(eval_set))
        except WorkbenchError as exc:
            st.error(str(exc))
            return None
        tag_counts: dict[str, int] = {}
        for item in loaded.items:
            for tag in item.tags:
                tag_counts[tag] = tag_counts.get(tag, 0) + 1
        st.caption(f"{len(loaded.items)} questions · tags: "
                   + (", ".join(f"{t} ({n})" for t, n in sorted(tag_counts.items())) or "none"))  # fmt: skip
        if loaded.bad_rows:
            st.warning(f"{len(loaded.bad_rows)} rows will be left out:")
            st.dataframe(loaded.bad_rows, hide_index=True, width="stretch")
        n_systems = st.number_input("Systems to compare", min_value=1, max_value=4, value=2, step=1,
                                    help="The first system is the baseline the others are compared with")  # fmt: skip
        systems = [self._system(i) for i in range(int(n_systems))]
        with st.expander("Options"):
            cols = st.columns(4)
            limit = config_number(cols[0], EvalConfig, "limit", "Only the first N questions (0: all)")
            timeout = config_number(cols[1], EvalConfig, "timeout_s", "Timeout per question (s)")
            resamples = config_number(cols[2], EvalConfig, "resamples", "Bootstrap resamples")
            seed = config_number(cols[3], EvalConfig, "seed", "Seed")
            tags = st.multiselect("Only questions with these tags (empty: all)", sorted(tag_counts), help=h("tags"))
            name = st.text_input("Run name", placeholder="eval set: systems", help=h("name"))
        if any(s is None for s in systems):
            return None
        try:
            return EvalConfig(eval_set=eval_set, systems=[s.to_dict() for s in systems], name=name.strip(),
                              limit=int(limit), tags=list(tags), timeout_s=float(timeout), resamples=int(resamples),
                              seed=int(seed))  # fmt: skip
        except ConfigError as exc:
            st.error(str(exc))
            return None

    def _system(self, i: int) -> SystemConfig | None:
        h = SystemConfig.help
        chat_models = [m.name for m in models.list_models()
                       if m.status == "ready" and m.role in ("chat", "finetune_base")]  # fmt: skip
        adapters = {r.id: r.name for r in finetune_runs.list_adapters()}
        names = indices.list_names()
        defaults = ["gemma3-270m-gguf", "smollm2-135m-instruct"]
        with st.container(border=True):
            cols = st.columns([2, 3, 3, 2])
            label = cols[0].text_input(f"System {i + 1} name", key=f"eval.sys{i}.name", help=h("name"),
                                       placeholder="model@index")  # fmt: skip
            if not chat_models:
                st.warning("No chat model is ready: prepare the embedded models on the Models page.")
                return None
            preferred = defaults[i] if i < len(defaults) and defaults[i] in chat_models else chat_models[0]
            model = cols[1].selectbox("Model", chat_models, index=chat_models.index(preferred),
                                      key=f"eval.sys{i}.model", help=h("model"))  # fmt: skip
            adapter = cols[2].selectbox("Adapter (fine-tuning run)", [NO_ADAPTER, *adapters],
                                        key=f"eval.sys{i}.adapter", format_func=lambda r: adapters.get(r, r),
                                        help=h("adapter"))  # fmt: skip
            index_options = [*names, NO_INDEX]
            index = cols[3].selectbox("Index", index_options, index=index_options.index("demo") if "demo" in names
                                      else len(names), key=f"eval.sys{i}.index", help=h("index"))  # fmt: skip
            cols = st.columns(4)
            top_k = config_number(cols[0], SystemConfig, "top_k", "Top k", key=f"eval.sys{i}.top_k")
            max_new = config_number(cols[1], SystemConfig, "max_new_tokens", "Max new tokens",
                                    key=f"eval.sys{i}.max_new_tokens")  # fmt: skip
            relevance = config_number(cols[2], SystemConfig, "min_relevance", "Min relevance",
                                      key=f"eval.sys{i}.min_relevance")  # fmt: skip
            batch = config_number(cols[3], SystemConfig, "batch_size", "Batch (transformers)",
                                  key=f"eval.sys{i}.batch_size")  # fmt: skip
        try:
            return SystemConfig(name=label.strip(), model=model, adapter=None if adapter == NO_ADAPTER else adapter,
                                index=None if index == NO_INDEX else index, top_k=int(top_k),
                                max_new_tokens=int(max_new), min_relevance=float(relevance),
                                batch_size=int(batch))  # fmt: skip
        except ConfigError as exc:
            st.error(f"System {i + 1}: {exc}")
            return None

    def _start(self, config: EvalConfig) -> None:
        try:
            run = registry.start(config)
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        st.session_state[state.EVAL_RUN] = run.id
        notice = f"Started evaluation {run.name} ({run.id}); follow it below."
        st.session_state[state.EVAL_NOTICE] = ("success", notice)
        st.rerun()

    def _runs(self) -> None:
        st.subheader("Runs")
        listed = registry.list_runs()
        if not listed:
            st.info("No evaluation runs yet. Choose an eval set and systems above, then start one.")
            return
        labels = {r.id: f"{r.name} · {r.status}" for r in listed}
        if st.session_state.get(state.EVAL_RUN) not in labels:
            st.session_state[state.EVAL_RUN] = listed[0].id
        run_id = st.selectbox("Run", list(labels), format_func=labels.get, key=state.EVAL_RUN)
        run_panel(run_id)


def _upload_dir() -> Path:
    folder = paths.uploads_dir() / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _eval_sets() -> list[str]:
    # Shipped sets as repository-relative paths (what config.json records), uploads as absolute paths. The safety
    # sets are labelled prompts, not question/answer sets.
    shipped = [p for p in sorted(paths.shipped_data_dir().glob("eval/*.jsonl")) if "safety" not in p.name]
    uploaded = [str(p) for p in sorted(_upload_dir().glob("*.jsonl"))]
    found = [str(p.relative_to(paths.REPO_ROOT)) for p in shipped] + uploaded
    return found or [EvalConfig().eval_set]


def _set_label(path: str) -> str:
    return f"uploads/{Path(path).name}" if Path(path).is_absolute() else path


def _save_upload() -> None:
    upload = st.session_state.get(UPLOAD_KEY)
    if upload is not None:
        target = save_upload(_upload_dir(), upload.name, upload.getvalue())
        st.session_state[state.EVAL_SET] = str(target)
