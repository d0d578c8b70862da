"""The only @st.cache_resource factories: heavy objects loaded once per process and never mutated."""

from pathlib import Path

import streamlit as st

from core.finetune import model as finetune_model
from core.llm.backends import load_generator
from core.rag import index as store
from core.rag.embed import Embedder
from core.safety import RuleStore
from core.safety.learned import LayerStore


@st.cache_resource(max_entries=2, show_spinner="Loading the embedding model…")
def embedder(name: str) -> Embedder:
    loaded = Embedder(name)
    loaded.encode(["warm-up"])  # load the weights now, not inside the first question's retrieval time
    return loaded


@st.cache_resource(max_entries=4, show_spinner="Loading the index…")
def index_state(name: str, generation: int) -> store.IndexState:
    # Keyed by generation: after an ingest commits a new generation the next call loads it, the old entry ages out.
    return store.load(name)


@st.cache_resource(max_entries=2, show_spinner="Loading the chat model…")
def generator(name: str, adapter: str | None = None):
    # Shared by every session; the generator's own lock serialises generation across browser tabs.
    return load_generator(name, adapter=Path(adapter) if adapter else None)


@st.cache_resource(max_entries=1)
def safety_rules() -> RuleStore:
    # Reloads the rule files only when they change on disk; the Safety page's toggles apply at once.
    return RuleStore()


@st.cache_resource(max_entries=1)
def safety_layers() -> LayerStore:
    # The learned safety layer in force; reloads when a retrain puts a new one in force.
    return LayerStore()


@st.cache_resource(max_entries=2, show_spinner="Loading the tokenizer…")
def training_tokenizer(base_model: str):
    # The tokenizer with the chat template a run trains with; the dataset check tokenizes through it.
    return finetune_model.training_tokenizer(base_model)
