"""The only @st.cache_resource factories: heavy objects loaded once per process and never mutated."""

import streamlit as st

from core.rag import index as store
from core.rag.embed import Embedder


@st.cache_resource(max_entries=2, show_spinner="Loading the embedding model…")
def embedder(name: str) -> Embedder:
    return Embedder(name)


@st.cache_resource(max_entries=4, show_spinner="Loading the index…")
def index_state(name: str, generation: int) -> store.IndexState:
    # Keyed by generation: after an ingest commits a new generation the next call loads it, the old entry ages out.
    return store.load(name)
