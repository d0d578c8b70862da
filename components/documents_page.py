"""DocumentsPage: add files to named indices (as a job), manage their documents, and try a search."""

import streamlit as st

from components import resources, state
from components.base import Page
from components.widgets import config_number, hit_card, human_size, job_card, show_notice
from core import jobs, paths
from core.config import IngestConfig, ReindexConfig
from core.errors import WorkbenchError
from core.ids import new_ulid
from core.models import registry
from core.rag import index as store
from core.rag import ingest, manage
from core.rag.retrieve import MODES
from core.uploads import save_upload

NEW_INDEX = "+ New index…"


class DocumentsPage(Page):
    title = "Documents"
    icon = ":material/description:"
    url_path = "documents"

    def render(self) -> None:
        st.title("Documents")
        st.caption(
            "Turn TXT, Markdown, PDF, JSON/JSONL and CSV files into a searchable index: chunks embedded with "
            "sentence-transformers in FAISS, plus BM25 keywords, fused at query time. Every hit keeps its file, "
            "page and character span."
        )
        show_notice(state.DOCS_NOTICE)
        damaged: list[str] = []
        infos = {i.name: i for i in manage.list_indices(errors=damaged)}
        for message in damaged:
            st.error(message)
        options = [*infos, NEW_INDEX]
        # A finished ingest or a deletion asks for another selection; apply it before the widget exists.
        wanted = st.session_state.pop(state.DOCS_SELECT_NEXT, None)
        if wanted in options:
            st.session_state[state.DOCS_INDEX] = wanted
        if st.session_state.get(state.DOCS_INDEX) not in options:
            st.session_state[state.DOCS_INDEX] = options[0]
        choice = st.selectbox("Index", options, key=state.DOCS_INDEX)
        name = st.text_input("New index name", placeholder="e.g. cardiology") if choice == NEW_INDEX else choice
        add, docs, search = st.tabs(["Add documents", "Documents in this index", "Search"])
        with add:
            self._add(name, infos.get(name))
        with docs:
            if name in infos:
                self._documents(infos[name])
            else:
                st.info("Choose an existing index, or add documents to create one.")
        with search:
            if name in infos:
                self._search(infos[name])
            else:
                st.info("Nothing to search yet.")

    def _add(self, name: str | None, info: manage.IndexInfo | None) -> None:
        job_id = st.session_state.get(state.DOCS_INGEST_JOB)
        if job_id:
            self._ingest_progress(job_id)
        uploads = st.file_uploader("Upload files", accept_multiple_files=True, key="documents.uploads")
        folder = st.text_input(
            "…or a file or folder on this machine", placeholder=str(paths.shipped_data_dir() / "corpus")
        )
        h = IngestConfig.help
        locked = info is not None  # an existing index keeps its chunking; change it with Re-index
        with st.expander("Options"):
            chunk_tokens = config_number(st, IngestConfig, "chunk_tokens", "Chunk tokens", disabled=locked,
                                         value=info.chunking["chunk_tokens"] if info else None)  # fmt: skip
            overlap = config_number(st, IngestConfig, "overlap_tokens", "Overlap tokens", disabled=locked,
                                    value=info.chunking["overlap_tokens"] if info else None)  # fmt: skip
            text_field = st.text_input("JSON/CSV text field", help=h("text_field"))
            limits = st.columns(4)
            max_mb = config_number(limits[0], IngestConfig, "max_file_mb", "Max file size (MB)")
            max_pages = config_number(limits[1], IngestConfig, "max_pdf_pages", "Max PDF pages")
            max_records = config_number(limits[2], IngestConfig, "max_records", "Max records (JSON/CSV)")
            max_text = config_number(limits[3], IngestConfig, "max_text_mb", "Max text per file (MB)")
            models = [m.name for m in registry.list_models(role="embeddings") if m.status == "ready"]
            model = (
                info.embedding["model"] if info else st.selectbox("Embedding model", models, help=h("embedding_model"))
            )
        if st.button("Ingest", type="primary", icon=":material/upload_file:", disabled=bool(job_id)):
            sources = [folder.strip()] if folder.strip() else []
            if uploads:
                batch = paths.uploads_dir() / new_ulid()
                for upload in uploads:  # two uploads of one name become "notes.txt" and "notes (2).txt"
                    save_upload(batch, upload.name, upload.getvalue())
                sources.append(str(batch))
            if not sources:
                st.error("Upload files or give a path first.")
                return
            try:
                config = IngestConfig(index=name or "", paths=sources, embedding_model=model,
                                      chunk_tokens=int(chunk_tokens), overlap_tokens=int(overlap),
                                      text_field=text_field.strip() or None, max_file_mb=float(max_mb),
                                      max_pdf_pages=int(max_pages), max_records=int(max_records),
                                      max_text_mb=float(max_text))  # fmt: skip
                st.session_state[state.DOCS_INGEST_JOB] = ingest.start(config)
            except WorkbenchError as exc:
                st.error(str(exc))
                return
            st.session_state[state.DOCS_SELECT_NEXT] = name
            st.rerun()

    def _ingest_progress(self, job_id: str) -> None:
        @st.fragment(run_every="1s")
        def poll() -> None:
            status = jobs.status(job_id)
            job_card(status, key_prefix="documents")
            if status.items:
                rows = [{"file": i["source"], "status": i["status"],
                         "pages": i["pages"], "chunks": i["chunks"], "message": i["message"] or "; ".join(i["notes"])}
                        for i in status.items]  # fmt: skip
                st.dataframe(rows, hide_index=True, width="stretch")
            if status.finished:
                if st.button("Done", key="documents.ingest_done"):
                    st.session_state.pop(state.DOCS_INGEST_JOB, None)
                    st.session_state[state.DOCS_SELECT_NEXT] = status.result.get("index")
                    st.rerun(scope="app")

        poll()

    def _documents(self, info: manage.IndexInfo) -> None:
        cols = st.columns(4)
        cols[0].metric("Documents", len(info.files))
        cols[1].metric("Chunks", info.chunks)
        cols[2].metric("Size", human_size(info.size_bytes))
        cols[3].metric("Generation", info.generation)
        st.caption(f"Embedding: {info.embedding['model']} ({info.embedding['dim']}-dim) · chunks of "
                   f"{info.chunking['chunk_tokens']} tokens, {info.chunking['overlap_tokens']} overlap · "
                   f"updated {info.updated_at}")  # fmt: skip
        rows = [{"document": f["source"], "format": f["format"], "pages/records": f["pages"], "chunks": f["chunks"],
                 "size": human_size(f["size_bytes"]), "sha256": f["sha256"][:12], "ingested": f["ingested_at"]}
                for f in info.files]  # fmt: skip
        st.dataframe(rows, hide_index=True, width="stretch")
        left, right = st.columns(2)
        with left.form("delete-doc"):
            source = st.selectbox("Remove a document", [f["source"] for f in info.files])
            if st.form_submit_button("Remove document", icon=":material/delete:"):
                _act(lambda: f"Removed {source} ({manage.delete_document(info.name, source)} chunks)")
                st.rerun()
        with right.form("delete-index"):
            sure = st.checkbox(f"Yes, delete index {info.name} and all its files")
            if st.form_submit_button("Delete index", icon=":material/delete_forever:", disabled=False):
                if sure:
                    _act(lambda: (store.delete_index(info.name), f"Deleted index {info.name}")[1])
                    st.rerun()
                else:
                    st.warning("Tick the box to confirm.")
        with st.form("reindex"):
            st.markdown("**Re-index** from the stored texts (another embedding model or chunking)")
            models = [m.name for m in registry.list_models(role="embeddings") if m.status == "ready"]
            model = st.selectbox("Embedding model", models, index=models.index(info.embedding["model"])
                                 if info.embedding["model"] in models else 0)  # fmt: skip
            chunk_tokens = config_number(st, ReindexConfig, "chunk_tokens", "Chunk tokens", key="docs.reindex_chunk",
                                         value=info.chunking["chunk_tokens"])  # fmt: skip
            overlap = config_number(st, ReindexConfig, "overlap_tokens", "Overlap tokens", key="docs.reindex_overlap",
                                    value=info.chunking["overlap_tokens"])  # fmt: skip
            if st.form_submit_button("Re-index", icon=":material/autorenew:"):
                try:
                    config = ReindexConfig(name=info.name, embedding_model=model, chunk_tokens=int(chunk_tokens),
                                           overlap_tokens=int(overlap))  # fmt: skip
                    job = manage.start_reindex(config)
                except WorkbenchError as exc:
                    st.error(str(exc))
                else:
                    st.success(f"Re-index started as job {job}; follow it on the Jobs page.")

    def _search(self, info: manage.IndexInfo) -> None:
        with st.form("search"):
            query = st.text_input("Query", placeholder="What does a sawtooth pattern on the ECG mean?")
            cols = st.columns(3)
            k = cols[0].slider("Top k", 1, 20, 5)
            mode = cols[1].radio("Mode", MODES, horizontal=True)
            min_score = cols[2].number_input("Min. cosine (0 = off)", 0.0, 1.0, 0.0, 0.05)
            submitted = st.form_submit_button("Search", icon=":material/search:")
        if not submitted or not query.strip():
            return
        try:
            index = resources.index_state(info.name, info.generation)
            hits = manage.search(info.name, query, k=k, mode=mode, min_score=min_score or None,
                                 embedder=resources.embedder(info.embedding["model"]), state=index)  # fmt: skip
        except WorkbenchError as exc:
            st.error(str(exc))
            return
        if not hits:
            st.info("No passage matches (try another wording, or lower the minimum score).")
        for rank, hit in enumerate(hits, start=1):
            hit_card(rank, hit, manage.passage_context(index, hit))


def _act(action) -> None:
    try:
        st.session_state[state.DOCS_NOTICE] = ("success", action())
    except WorkbenchError as exc:
        st.session_state[state.DOCS_NOTICE] = ("error", str(exc))
