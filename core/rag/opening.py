"""Open an index together with its embedding model, checking that the model is the one the index was built with."""

from dataclasses import dataclass

from core.rag import index as store
from core.rag.embed import Embedder


@dataclass(frozen=True)
class OpenIndex:
    """A loaded index and the embedder that reads queries for it (same model, same weights)."""

    state: store.IndexState
    embedder: Embedder

    @property
    def name(self) -> str:
        """The index name."""
        return self.state.name


def check_embedder(state: store.IndexState, embedder: Embedder) -> None:
    """Refuse an embedder whose vectors do not live in the index's space.

    Args:
        state: A loaded index.
        embedder: The embedder meant to encode queries for it.

    Raises:
        RagIndexError: If the model name or the fingerprint of its weights differ from the index's.
    """
    have = state.manifest["embedding"]
    if embedder.name != have["model"]:
        raise store.RagIndexError(
            f"Index {state.name} was built with {have['model']}, not {embedder.name}: queries must be embedded by "
            "the same model"
        )
    if embedder.fingerprint != have["fingerprint"]:
        raise store.RagIndexError(
            f"Index {state.name} was built with another version of {have['model']} (fingerprint "
            f"{have['fingerprint']}, installed {embedder.fingerprint}): re-index required "
            f"(`workbench index reindex {state.name}`)"
        )


def open_index(
    name: str, embedder: Embedder | None = None, state: store.IndexState | None = None, warm: bool = True
) -> OpenIndex:
    """Load an index (unless given) and its embedding model (unless given), and check that they belong together.

    Args:
        name: Index name.
        embedder: An already loaded embedder to reuse (the app's cached one).
        state: An already loaded index to reuse.
        warm: Run one encode now, so that the first query's retrieval time does not include loading the weights.

    Returns:
        The opened index.

    Raises:
        RagIndexError: If there is no such index, its files are damaged, or the embedder does not match it.
        EmbeddingError: If the index's embedding model is not available.
    """
    state = state or store.load(name)  # a deleted index fails here, before a model is loaded
    embedder = embedder or Embedder(state.manifest["embedding"]["model"])
    check_embedder(state, embedder)
    if warm:
        embedder.encode(["warm-up"])
    return OpenIndex(state, embedder)
