"""Hybrid retrieval: dense (FAISS inner product) and BM25 candidates fused by reciprocal rank fusion."""

from dataclasses import asdict, dataclass, field

import numpy as np

from core.rag.index import IndexState, bm25_tokens

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of top ranks


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, traceable to its file, page (or record) and character span."""

    chunk_id: str
    source: str
    page: int | None
    start: int
    end: int
    score: float  # fused RRF score (hybrid), cosine (dense) or BM25 score (bm25)
    text: str
    record: int | None = None
    dense_score: float | None = None  # cosine similarity to the query, for every mode
    bm25_score: float | None = None
    dense_rank: int | None = None  # 1-based rank in the dense list, None when not a dense candidate
    bm25_rank: int | None = None
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def retrieve(
    state: IndexState,
    query: str,
    query_vector: np.ndarray,
    k: int = 5,
    mode: str = "hybrid",
    min_score: float | None = None,
    candidates: int | None = None,
) -> list[Hit]:
    """Find the chunks that best answer ``query``.

    Args:
        state: A loaded index.
        query: The query text (for BM25).
        query_vector: Its normalised embedding, shape (dim,).
        k: Hits to return.
        mode: ``hybrid`` (dense + BM25 fused), ``dense`` or ``bm25``.
        min_score: Drop hits whose cosine similarity to the query is below this (any mode).
        candidates: Candidates taken from each list before fusion (default ``max(4k, 20)``).

    Returns:
        Up to ``k`` hits, best first.

    Raises:
        ValueError: For an unknown mode or k < 1.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not state.chunks:
        return []
    n = min(candidates or max(4 * k, 20), len(state.chunks))
    qv = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)  # (1, dim)
    dense: dict[int, tuple[int, float]] = {}  # position -> (rank, cosine)
    if mode in ("hybrid", "dense"):
        scores, ids = state.dense_search(qv[0], n)
        for rank, (vid, score) in enumerate(zip(ids, scores, strict=True), start=1):
            dense[state.position(int(vid))] = (rank, float(score))
    sparse: dict[int, tuple[int, float]] = {}
    if mode in ("hybrid", "bm25") and state.bm25 is not None:
        tokens = bm25_tokens([query])
        if tokens[0]:
            # n_threads=0 scores in this thread; any other value starts a thread pool on every query.
            docs, scores = state.bm25.retrieve(tokens, k=n, show_progress=False, n_threads=0)
            rank = 0
            for pos, score in zip(docs[0], scores[0], strict=True):
                if score > 0:
                    rank += 1
                    sparse[int(pos)] = (rank, float(score))
    if mode == "dense":
        fused = {p: s for p, (_, s) in dense.items()}
    elif mode == "bm25":
        fused = {p: s for p, (_, s) in sparse.items()}
    else:
        fused = {}
        for ranked in (dense, sparse):
            for pos, (rank, _) in ranked.items():
                fused[pos] = fused.get(pos, 0.0) + 1.0 / (RRF_K + rank)
    hits = []
    for pos in sorted(fused, key=lambda p: -fused[p]):
        chunk = state.chunks[pos]
        cosine = dense[pos][1] if pos in dense else float(state.vectors.reconstruct(chunk["vid"]) @ qv[0])
        if min_score is not None and cosine < min_score:
            continue
        hits.append(
            Hit(
                chunk_id=chunk["id"],
                source=chunk["source"],
                page=chunk["page"],
                start=chunk["start"],
                end=chunk["end"],
                score=round(fused[pos], 6),
                text=chunk["text"],
                record=chunk.get("record"),
                dense_score=round(cosine, 6),
                bm25_score=round(sparse[pos][1], 6) if pos in sparse else None,
                dense_rank=dense[pos][0] if pos in dense else None,
                bm25_rank=sparse[pos][0] if pos in sparse else None,
                metadata=chunk.get("metadata") or {},
            )
        )
        if len(hits) == k:
            break
    return hits
