"""ModelsPage: the model registry — embedded defaults, user models, add / check / remove, prepare embedded."""

import streamlit as st

from components import state
from components.base import Page
from components.widgets import badge, escape_md, human_size, job_card, show_notice
from core import jobs
from core.models import registry
from core.models.entry import STATUS_HELP
from core.models.formats import ROLES, ModelError

ROLE_LABELS = {"chat": "Chat", "finetune_base": "Fine-tune base", "embeddings": "Embeddings", "vision": "Vision"}


class ModelsPage(Page):
    title = "Models"
    icon = ":material/deployed_code:"
    url_path = "models"

    def render(self) -> None:
        st.title("Models")
        st.caption(
            "Every model the workbench can use. The embedded defaults ship as Python packages and work offline; "
            "add a local GGUF/ONNX file, a Hugging Face folder, or a hub id that is already in your local cache."
        )
        show_notice(state.MODELS_NOTICE)
        entries = registry.list_models()
        ready = sum(e.status == "ready" for e in entries)
        st.markdown(f"**{ready} of {len(entries)} models ready**")
        self._prepare_section([e for e in entries if e.embedded])
        for entry in entries:
            self._model_card(entry)
        self._add_form()

    def _model_card(self, entry: registry.ModelEntry) -> None:
        with st.container(border=True, key=f"model-{entry.name}"):
            head, actions = st.columns([5, 2])
            origin = "embedded" if entry.embedded else "added"
            # Names and details can come from a model file's own metadata (GGUF general.name): shown literally.
            head.markdown(
                f"**{escape_md(entry.name)}** {badge(entry.status)}  \n"
                f"{ROLE_LABELS.get(entry.role, entry.role)} · {entry.format.upper()} · "
                f"{human_size(entry.size_bytes)} · {origin}"
            )
            head.caption(escape_md(entry.detail) if entry.detail else STATUS_HELP.get(entry.status, ""))
            if entry.path:
                head.caption(escape_md(entry.path))
            check, remove = actions.columns(2)
            check.button(
                "Check",
                key=f"check-{entry.name}",
                on_click=_check,
                args=(entry.name,),
                help="Re-read headers and verify the weights are complete (hashes for embedded models)",
            )
            if not entry.embedded:
                remove.button(
                    "Remove",
                    key=f"remove-{entry.name}",
                    on_click=_remove,
                    args=(entry.name,),
                    help="Forget this model (its files are left on disk)",
                )

    def _prepare_section(self, embedded: list[registry.ModelEntry]) -> None:
        job_id = st.session_state.get(state.MODELS_PREPARE_JOB)
        if job_id is None and all(e.status == "ready" for e in embedded):
            return
        st.subheader("Embedded models")
        if job_id is None:
            st.info(
                "Some embedded models are not prepared yet. Preparing assembles Gemma 3 270M and imports it "
                "into transformers once (about a minute on 2 cores)."
            )
            if st.button("Prepare embedded models", icon=":material/download:"):
                st.session_state[state.MODELS_PREPARE_JOB] = jobs.launch(
                    "core.models.embedded", {}, title="Prepare embedded models"
                )
                st.rerun()
            return

        @st.fragment(run_every="2s")
        def poll() -> None:
            status = jobs.status(job_id)
            job_card(status, key_prefix="models")
            if status.finished:
                st.session_state.pop(state.MODELS_PREPARE_JOB, None)
                st.rerun(scope="app")

        poll()

    def _add_form(self) -> None:
        st.subheader("Add a model")
        with st.form("add-model", clear_on_submit=False):
            source = st.text_input(
                "Path or hub id",
                placeholder="/data/models/medgemma-4b-it  or  google/medgemma-4b-it",
                help="A .gguf or .onnx file, a Hugging Face model folder, or a hub id already in the local cache. "
                "Nothing is downloaded.",
            )
            name = st.text_input("Name (optional)", help="Defaults to the file or repository name")
            role = st.selectbox("Role", ["(detect)", *ROLES], format_func=lambda r: ROLE_LABELS.get(r, r))
            if st.form_submit_button("Add model", icon=":material/add:"):
                try:
                    entry = registry.add_model(source, name or None, None if role == "(detect)" else role)
                except ModelError as exc:
                    st.error(str(exc))
                else:
                    if entry.status == "ready":
                        st.success(f"Added {escape_md(entry.name)}: {escape_md(entry.detail)}")
                    else:
                        st.warning(
                            f"Added {escape_md(entry.name)}, but it is not usable yet: {escape_md(entry.detail)}"
                        )


def _check(name: str) -> None:
    try:
        entry = registry.check_model(name)
    except ModelError as exc:
        st.session_state[state.MODELS_NOTICE] = ("error", str(exc))
        return
    kind = "success" if entry.status == "ready" else "error"
    st.session_state[state.MODELS_NOTICE] = (
        kind,
        f"{escape_md(entry.name)}: {entry.status} — {escape_md(entry.detail)}",
    )


def _remove(name: str) -> None:
    try:
        registry.remove_model(name)
    except ModelError as exc:
        st.session_state[state.MODELS_NOTICE] = ("error", str(exc))
    else:
        st.session_state[state.MODELS_NOTICE] = ("success", f"Removed {escape_md(name)} from the registry")
