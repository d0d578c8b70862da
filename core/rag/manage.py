"""Index management and search: list, inspect, delete a document or an index, re-index, search, passage context.

``python -m core.rag.manage CONFIG.json`` runs :func:`reindex` as a job (a :class:`ReindexConfig` as JSON:
``{"name", "embedding_model", "chunk_tokens", "overlap_tokens"}``); :func:`start_reindex` launches one.
"""

import logging
import time
from dataclasses import asdict, dataclass

from core import jobs
from core.config import ReindexConfig
from core.rag import index as store
from core.rag.chunking import TokenCounter, chunk_units
from core.rag.embed import Embedder
from core.rag.loaders import Unit
from core.rag.opening import open_index
from core.rag.retrieve import Hit, retrieve

logger = logging.getLogger(__name__)

JOB_MODULE = "core.rag.manage"
# SIGTERM interrupts a re-index between Python bytecodes (one document's embedding at worst); the old generation
# serves searches until the new one is committed, so a kill at any point loses nothing.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class IndexInfo:
    """An index as the Documents page and ``workbench index show --json`` describe it."""

    name: str
    files: list[dict]  # {"source", "format", "pages", "chunks", "size_bytes", "sha256", "ingested_at", "path"}
    chunks: int
    embedding: dict
    chunking: dict
    size_bytes: int
    generation: int
    created_at: str
    updated_at: str

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def inspect_index(name: str) -> IndexInfo:
    """Describe one index from its manifest (nothing heavy is loaded).

    Raises:
        RagIndexError: If there is no such index.
    """
    manifest = store.read_manifest(name)
    stats = manifest.get("stats", {})
    files = [{"source": source, **record} for source, record in sorted(manifest["files"].items())]
    return IndexInfo(
        name=name,
        files=files,
        chunks=stats.get("chunks", 0),
        embedding=manifest["embedding"],
        chunking=manifest["chunking"],
        size_bytes=stats.get("size_bytes", 0),
        generation=manifest["generation"],
        created_at=manifest["created_at"],
        updated_at=manifest["updated_at"],
    )


def list_indices(errors: list[str] | None = None) -> list[IndexInfo]:
    """Describe every index, sorted by name.

    Args:
        errors: When given, an index whose manifest is damaged is left out and its error appended here (so one bad
            index does not hide the others); when None, the first such error is raised.

    Raises:
        RagIndexError: A damaged manifest, when ``errors`` is None.
    """
    infos = []
    for name in store.list_names():
        try:
            infos.append(inspect_index(name))
        except store.RagIndexError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return infos


def delete_document(name: str, source: str) -> int:
    """Remove one document (vectors, BM25 entry, chunks and text) from an index.

    Args:
        name: Index name.
        source: The document's name in the index.

    Returns:
        The number of chunks removed.

    Raises:
        RagIndexError: If the index or the document does not exist.
    """
    with store.lock(name):
        state = store.load(name)
        if source not in state.manifest["files"]:
            raise store.RagIndexError(f"Index {name} has no document named {source!r}")
        removed = store.remove_source(state, source)
        store.commit(state)
    return removed


def start_reindex(config: ReindexConfig) -> str:
    """Run :func:`reindex` as a background job (``python -m core.rag.manage config.json``).

    The index and the new chunking are checked first, so a bad request is refused here, not by a failed job.

    Args:
        config: Which index to rebuild, and how.

    Returns:
        The job id.

    Raises:
        RagIndexError: If there is no such index.
        ConfigError: If the new chunking breaks the rules (say an overlap above half of the index's chunk size).
        JobError: If the job process cannot be started.
    """
    config.chunking(store.read_manifest(config.name)["chunking"])
    return jobs.launch(JOB_MODULE, config.to_dict(), f"Re-index {config.name}", stop_grace_s=STOP_GRACE_S)


def reindex(config: ReindexConfig, progress=None) -> dict:
    """Rebuild an index from its stored document texts, optionally with another embedding model or chunking.

    The original files are not needed. Until the new generation is committed, searches use the old one.

    Args:
        config: The index, and the embedding model and chunking to use (None: the index's own).
        progress: ``progress(fraction, message)``.

    Returns:
        ``{"index", "chunks", "embedding", "chunking", "seconds"}``.

    Raises:
        RagIndexError: If the index does not exist or the chunk size exceeds the model's input.
        ConfigError: If the new chunking breaks the rules IngestConfig enforces.
    """
    report = progress or (lambda *a, **k: None)
    started = time.perf_counter()
    name = config.name
    with store.lock(name):
        old = store.load(name)
        chunking = config.chunking(old.manifest["chunking"])
        embedder = Embedder(config.embedding_model or old.manifest["embedding"]["model"])
        if chunking["chunk_tokens"] > embedder.max_tokens:
            raise store.RagIndexError(f"chunk_tokens exceeds what {embedder.name} reads ({embedder.max_tokens})")
        embedding = {"model": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim}
        state = store.new_state(name, embedding, chunking)
        state.manifest["created_at"] = old.manifest["created_at"]
        state.manifest["generation"] = old.generation
        counter = TokenCounter(embedder.tokenizer_file)
        report(0.05, "Chunking stored documents")
        per_source: dict[str, list[dict]] = {}
        for doc in old.docs:
            per_source.setdefault(doc["source"], []).append(doc)
        for source, docs in per_source.items():
            units = [Unit(d["text"], d.get("page"), d.get("record"), d.get("metadata") or {}) for d in docs]
            chunks = chunk_units(units, source, counter, chunking["chunk_tokens"], chunking["overlap_tokens"])
            vectors = embedder.encode([c.text for c in chunks])
            store.add(state, [c.to_dict() for c in chunks], vectors, docs)
            state.manifest["files"][source] = {**old.manifest["files"][source], "chunks": len(chunks)}
            report(0.05 + 0.85 * len(state.manifest["files"]) / len(per_source), f"Re-embedded {source}")
        report(0.92, "Writing index")
        state = store.commit(state)
    report(1.0, "Re-index done")
    return {
        "index": name,
        "chunks": len(state.chunks),
        "embedding": embedding,
        "chunking": chunking,
        "seconds": round(time.perf_counter() - started, 3),
    }


def search(
    name: str,
    query: str,
    k: int = 5,
    mode: str = "hybrid",
    min_score: float | None = None,
    embedder: Embedder | None = None,
    state: store.IndexState | None = None,
) -> list[Hit]:
    """Search an index by name (loads it and its embedding model unless given).

    Args:
        name: Index name.
        query: The question or keywords.
        k: Hits to return.
        mode: ``hybrid``, ``dense`` or ``bm25``.
        min_score: Minimum cosine similarity.
        embedder: A loaded embedder of the index's model, to reuse.
        state: A loaded index, to reuse.

    Returns:
        Hits, best first.

    Raises:
        RagIndexError: If the index does not exist or the embedder does not match it.
    """
    opened = open_index(name, embedder=embedder, state=state, warm=False)
    query_vector = opened.embedder.encode([query])[0]
    return retrieve(opened.state, query, query_vector, k=k, mode=mode, min_score=min_score)


def document_text(state: store.IndexState, source: str, page: int | None, record: int | None) -> str:
    """Return the stored text of one page (PDF), record (JSON/CSV) or whole document.

    Raises:
        RagIndexError: If the index no longer holds that text (the document was changed or removed).
    """
    for doc in state.docs:
        if (doc["source"], doc.get("page"), doc.get("record")) == (source, page, record):
            return doc["text"]
    raise store.RagIndexError(f"The text of {source} is not stored in index {state.name}")


def passage_context(state: store.IndexState, hit: Hit) -> dict:
    """Return the full page/record text around a hit, for "open in context" views.

    Returns:
        ``{"source", "page", "record", "text", "start", "end"}`` where ``text[start:end] == hit.text``.

    Raises:
        RagIndexError: If the index no longer holds the hit's text.
    """
    text = document_text(state, hit.source, hit.page, hit.record)
    return {"source": hit.source, "page": hit.page, "record": hit.record, "text": text,
            "start": hit.start, "end": hit.end}  # fmt: skip


if __name__ == "__main__":
    jobs.run_child(lambda config, reporter: reindex(ReindexConfig.from_dict(config), progress=reporter.progress))
