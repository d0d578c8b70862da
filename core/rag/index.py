"""On-disk RAG indices: one folder per name, written as whole generations so a crash never spoils the last good one.

Layout of ``indices/<name>/``::

    manifest.json          embedding model + fingerprint, chunker settings, files (hash, chunks), generation
    gen-000007/
        vectors.faiss      IndexIDMap2(IndexFlatIP): exact inner product on normalised vectors, delete by id
        chunks.jsonl       one chunk per line, in BM25 document order, with its FAISS id
        docs.jsonl         the text of every page/record (context view and re-index without the original files)
        bm25/              bm25s index (numpy arrays + JSON vocabulary; no pickle)

A writer builds a new ``gen-*`` folder, flushes it to disk, then swaps ``manifest.json`` atomically to point at
it; readers always see a complete generation. The previous generation is kept until the next commit, so a reader
that read the old manifest a moment ago can still open its files; older ones are removed after the swap.
"""

import fcntl
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import paths
from core.config import INDEX_NAME
from core.errors import WorkbenchError
from core.fileio import JsonlError, atomic_write_json, fsync_path, read_json, read_jsonl

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG on its own handler

FORMAT_VERSION = 1
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


class RagIndexError(WorkbenchError):
    """An index is missing, incompatible with the request, or cannot be written."""


def bm25_tokens(texts: list[str]) -> list[list[str]]:
    """Tokenise for BM25: lower-case words, English stop words removed, Snowball-stemmed.

    Args:
        texts: Passages or queries.

    Returns:
        One token list per text.
    """
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    stemmer = Stemmer.Stemmer("english")
    stop = set(STOPWORDS_EN)
    return [stemmer.stemWords([w for w in _WORD.findall(t.lower()) if w not in stop]) for t in texts]


@dataclass
class IndexState:
    """A generation loaded in memory: what readers search and what writers copy and change."""

    name: str
    manifest: dict
    vectors: object  # faiss.IndexIDMap2
    chunks: list[dict]  # BM25 document order
    docs: list[dict]
    bm25: object | None  # bm25s.BM25, None when the index is empty
    _pos_of: dict[int, int] = field(default_factory=dict, repr=False)
    _matrix: tuple | None = field(default=None, repr=False)  # (vectors view (N, dim), FAISS ids (N,))

    def position(self, vid: int) -> int:
        """Return the position in ``chunks`` (= BM25 document id) of the chunk with FAISS id ``vid``."""
        # FAISS ids are stable across generations; positions are not, so the map follows `chunks`.
        if len(self._pos_of) != len(self.chunks):
            self._pos_of = {c["vid"]: i for i, c in enumerate(self.chunks)}
        return self._pos_of[vid]

    def dense_search(self, query_vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``n`` inner-product search: (scores, FAISS ids), best first.

        FAISS scans a flat index with one thread for a single query; a matrix-vector product over a zero-copy
        view of the same vectors uses the BLAS threads and returns identical results about three times faster.
        """
        import faiss

        if self._matrix is None or len(self._matrix[1]) != self.vectors.ntotal:
            flat = faiss.downcast_index(self.vectors.index)
            view = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
            self._matrix = (view, faiss.vector_to_array(self.vectors.id_map))
        view, ids = self._matrix
        n = min(n, len(ids))
        if n == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores = view @ query_vector  # (N,)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return scores[top], ids[top]

    @property
    def generation(self) -> int:
        """The generation number this state was read from (0: not yet written)."""
        return self.manifest.get("generation", 0)


def index_dir(name: str) -> Path:
    """Return the folder of index ``name`` (not created).

    Raises:
        RagIndexError: If the name is not a valid index name.
    """
    if not INDEX_NAME.fullmatch(name or ""):
        raise RagIndexError(f"Invalid index name {name!r}")
    return paths.indices_dir() / name


def exists(name: str) -> bool:
    """Whether an index with a committed generation exists."""
    return (index_dir(name) / "manifest.json").exists()


def list_names() -> list[str]:
    """Names of all committed indices, sorted."""
    found = (p.parent.name for p in paths.indices_dir().glob("*/manifest.json"))
    return sorted(name for name in found if INDEX_NAME.fullmatch(name))


def read_manifest(name: str) -> dict:
    """Return an index's manifest.

    Raises:
        RagIndexError: If there is no such index.
    """
    path = index_dir(name) / "manifest.json"
    if not path.exists():
        raise RagIndexError(f"No index named {name!r}")
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:  # written atomically, so only a hand edit or a disk fault
        raise RagIndexError(
            f"Index {name}'s manifest.json is damaged ({exc}); delete the index and ingest again"
        ) from exc
    if not isinstance(manifest, dict) or "generation" not in manifest:
        raise RagIndexError(
            f"Index {name}'s manifest.json is damaged (no generation); delete the index and ingest again"
        )
    return manifest


def new_state(name: str, embedding: dict, chunking: dict) -> IndexState:
    """Return an empty, uncommitted index.

    Args:
        name: Index name.
        embedding: ``{"model", "fingerprint", "dim"}``.
        chunking: ``{"chunk_tokens", "overlap_tokens"}``.
    """
    import faiss

    manifest = {
        "name": name,
        "format_version": FORMAT_VERSION,
        "generation": 0,
        "created_at": _now(),
        "updated_at": _now(),
        "embedding": embedding,
        "chunking": chunking,
        "next_id": 0,
        "files": {},
    }
    vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(int(embedding["dim"])))
    return IndexState(name, manifest, vectors, [], [], None)


def load(name: str, manifest: dict | None = None) -> IndexState:
    """Load the current generation of an index, or the one a manifest read earlier points at.

    Args:
        name: Index name.
        manifest: A manifest read a moment ago (its generation stays on disk until the commit after next).

    Returns:
        The state.

    Raises:
        RagIndexError: If the index or that generation does not exist, or its files are damaged.
    """
    import bm25s
    import faiss

    manifest = manifest if manifest is not None else read_manifest(name)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RagIndexError(f"Index {name} has format {manifest.get('format_version')}; re-index required")
    gen_dir = index_dir(name) / _gen_name(manifest["generation"])
    try:
        vectors = faiss.read_index(str(gen_dir / "vectors.faiss"))
        chunks = read_jsonl(gen_dir / "chunks.jsonl")
        docs = read_jsonl(gen_dir / "docs.jsonl")
        bm25 = bm25s.BM25.load(str(gen_dir / "bm25"), mmap=False) if chunks else None
    except (RuntimeError, OSError, ValueError, JsonlError) as exc:
        raise RagIndexError(f"Index {name} generation {manifest['generation']} is damaged: {exc}") from exc
    if vectors.ntotal != len(chunks):
        raise RagIndexError(f"Index {name} is inconsistent: {vectors.ntotal} vectors for {len(chunks)} chunks")
    return IndexState(name, manifest, vectors, chunks, docs, bm25)


def commit(state: IndexState) -> IndexState:
    """Write ``state`` as the next generation and switch the manifest to it atomically.

    Args:
        state: The changed state (its manifest's ``files`` must already describe the new content).

    Returns:
        The state as committed (generation incremented).
    """
    import bm25s
    import faiss

    root = index_dir(state.name)
    root.mkdir(parents=True, exist_ok=True)
    generation = state.generation + 1
    current = read_json(root / "manifest.json")["generation"] if (root / "manifest.json").exists() else 0
    generation = max(generation, current + 1)
    gen_dir = root / _gen_name(generation)
    shutil.rmtree(gen_dir, ignore_errors=True)  # leftovers of a writer that crashed before its swap
    gen_dir.mkdir()
    faiss.write_index(state.vectors, str(gen_dir / "vectors.faiss"))
    _write_jsonl(gen_dir / "chunks.jsonl", state.chunks)
    _write_jsonl(gen_dir / "docs.jsonl", state.docs)
    bm25 = None
    if state.chunks:
        bm25 = bm25s.BM25()
        bm25.index(bm25_tokens([c["text"] for c in state.chunks]), show_progress=False)
        bm25.save(str(gen_dir / "bm25"), show_progress=False)
    manifest = {**state.manifest, "generation": generation, "updated_at": _now()}
    manifest["stats"] = {
        "files": len(manifest["files"]),
        "chunks": len(state.chunks),
        "size_bytes": sum(f.stat().st_size for f in gen_dir.rglob("*") if f.is_file()),
    }
    # Every file and folder of the generation reaches the disk before the manifest names it: after a power cut the
    # manifest must never point at a folder whose files were still only in the page cache.
    fsync_path(gen_dir, tree=True)
    fsync_path(root)
    atomic_write_json(root / "manifest.json", manifest)
    fsync_path(root)  # the rename of manifest.json itself
    # Keep the generation the manifest named until now (readers may be opening it); older ones and the leftovers
    # of crashed writers go.
    keep = {gen_dir.name, _gen_name(current)}
    for old in root.glob("gen-*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return IndexState(state.name, manifest, state.vectors, state.chunks, state.docs, bm25)


def add(state: IndexState, chunks: list[dict], vectors: np.ndarray, docs: list[dict]) -> None:
    """Append chunks (with their vectors) and document texts to an in-memory state."""
    start = state.manifest["next_id"]
    ids = np.arange(start, start + len(chunks), dtype=np.int64)
    if len(chunks):
        state.vectors.add_with_ids(vectors, ids)  # vectors: (N, dim) float32
    for chunk, vid in zip(chunks, ids, strict=True):
        state.chunks.append({**chunk, "vid": int(vid)})
    state.docs.extend(docs)
    state.manifest["next_id"] = start + len(chunks)


def remove_source(state: IndexState, source: str) -> int:
    """Remove one document's chunks, vectors and texts from an in-memory state.

    Returns:
        The number of chunks removed.
    """
    gone = [c["vid"] for c in state.chunks if c["source"] == source]
    if gone:
        state.vectors.remove_ids(np.asarray(gone, dtype=np.int64))
    state.chunks[:] = [c for c in state.chunks if c["source"] != source]
    state.docs[:] = [d for d in state.docs if d["source"] != source]
    state.manifest["files"].pop(source, None)
    return len(gone)


def delete_index(name: str) -> None:
    """Delete an index and all its files.

    Raises:
        RagIndexError: If there is no such index.
    """
    root = index_dir(name)
    if not root.exists():
        raise RagIndexError(f"No index named {name!r}")
    with lock(name):
        # Rename first: readers and `list_names` stop seeing it at once, even if the removal is slow.
        doomed = root.with_name(f".deleted-{name}-{time.time_ns()}")
        root.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


@contextmanager
def lock(name: str) -> Iterator[None]:
    """Hold the index's writer lock (one ingest, delete or re-index at a time).

    Raises:
        RagIndexError: If the name is not a valid index name (checked before any file is opened).
    """
    index_dir(name)  # validates: the lock file's name is built from it
    lock_file = paths.indices_dir() / f".{name}.lock"
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _gen_name(generation: int) -> str:
    return f"gen-{generation:06d}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
