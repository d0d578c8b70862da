"""Ingest files into a named index: load, chunk, embed, store; unchanged files are skipped, changed ones replaced.

A bad file is reported in its own result and never stops the others or touches what the index already holds.
``python -m core.rag.ingest CONFIG.json`` runs :func:`ingest` as a job; :func:`start` launches one.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import jobs
from core.config import IngestConfig
from core.rag import index as store
from core.rag.chunking import TokenCounter, chunk_units
from core.rag.embed import Embedder
from core.rag.loaders import SUPPORTED_SUFFIXES, LoadError, LoadOptions, load_file, read_file

logger = logging.getLogger(__name__)

Progress = Callable[..., None]
JOB_MODULE = "core.rag.ingest"
# A cancel (SIGTERM) interrupts the child at its next Python bytecode: at worst one embedding batch or one PDF page
# finishes first, about a second. Being killed later is harmless too: the last committed generation stays.
STOP_GRACE_S = 10.0


@dataclass
class FileResult:
    """What happened to one file."""

    source: str  # the document's name in the index
    path: str
    status: str  # added | updated | unchanged | error | skipped
    pages: int = 0
    chunks: int = 0
    message: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """The outcome of one ingest, as ``workbench ingest --json`` prints it."""

    index: str
    files: list[FileResult]
    chunks_added: int
    chunks_removed: int
    total_chunks: int
    total_files: int
    generation: int
    seconds: float
    timings: dict

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)

    @property
    def errors(self) -> list[FileResult]:
        """Files that could not be ingested."""
        return [f for f in self.files if f.status == "error"]


def discover(paths: list[str]) -> list[tuple[str, Path]]:
    """Expand files and folders into (source name, path) pairs.

    A folder's files are named by their path relative to it (``sub/a.md``); a file given directly by its name.
    Hidden files and folders are skipped.

    Args:
        paths: Files or folders.

    Returns:
        Pairs in a stable order. Paths that do not exist are returned too (and reported as errors by ingest).
    """
    found = []
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            is_dir = path.is_dir()
        except OSError:  # a name too long for the file system, say: reported as that path's error by ingest
            is_dir = False
        if is_dir:
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if file.is_file() and not any(part.startswith(".") for part in rel.parts):
                    found.append((rel.as_posix(), file))
        else:
            found.append((path.name, path))
    return found


def start(config: IngestConfig) -> str:
    """Run :func:`ingest` as a background job (``python -m core.rag.ingest config.json``).

    Args:
        config: What to ingest where.

    Returns:
        The job id; per-file results arrive as ``item`` events, the :class:`IngestReport` as its result.

    Raises:
        JobError: If the job process cannot be started.
    """
    return jobs.launch(JOB_MODULE, config.to_dict(), f"Ingest into {config.index}", stop_grace_s=STOP_GRACE_S)


def ingest(config: IngestConfig, progress: Progress | None = None, embedder: Embedder | None = None) -> IngestReport:
    """Add or update files in an index.

    Args:
        config: What to ingest where, and how to chunk.
        progress: ``progress(fraction, message, **fields)``; also called with ``item=FileResult`` per file.
        embedder: A loaded embedder to reuse (must match ``config.embedding_model``); loaded when omitted.

    Returns:
        The report; per-file problems are in ``files`` with status ``error``.

    Raises:
        RagIndexError: If the index was built with a different embedding model or chunking ("re-index required").
        EmbeddingError: If the embedding model is not available.
    """
    report = progress or (lambda *a, **k: None)
    started = time.perf_counter()
    timings = {"load_chunk_s": 0.0, "embed_s": 0.0, "write_s": 0.0}
    files = discover(config.paths)
    report(0.0, f"Found {len(files)} files")
    embedder = embedder or Embedder(config.embedding_model)
    chunking = {"chunk_tokens": config.chunk_tokens, "overlap_tokens": config.overlap_tokens}
    counter = TokenCounter(embedder.tokenizer_file)
    options = LoadOptions.from_config(config)
    with store.lock(config.index):
        # Only the manifest is needed to skip unchanged files; the vectors and the model load when there is work.
        manifest = store.read_manifest(config.index) if store.exists(config.index) else None
        if manifest is not None:
            _check_compatible(config.index, manifest, embedder, chunking)
        known = manifest["files"] if manifest else {}
        results, pending, seen = [], [], set()
        for number, (source, path) in enumerate(files, start=1):
            t0 = time.perf_counter()
            result, chunks, docs, record = _prepare_isolated(source, path, known, counter, config, options, seen)
            timings["load_chunk_s"] += time.perf_counter() - t0
            results.append(result)
            if chunks is not None:
                pending.append((result, chunks, docs, record))
            report(0.3 * number / max(1, len(files)), f"Read {number}/{len(files)}: {source}", item=asdict(result))
        removed = added = 0
        totals = (sum(r["chunks"] for r in known.values()), len(known), manifest["generation"] if manifest else 0)
        if pending:
            if config.chunk_tokens > embedder.max_tokens:
                raise store.RagIndexError(
                    f"chunk_tokens {config.chunk_tokens} exceeds what {embedder.name} reads "
                    f"({embedder.max_tokens} tokens)"
                )
            texts = [c.text for _, chunks, _, _ in pending for c in chunks]
            t0 = time.perf_counter()
            vectors = embedder.encode_batches(texts, config.batch_size, report, span=(0.3, 0.9))  # (N, dim)
            timings["embed_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if manifest is not None:
                state = store.load(config.index)
            else:
                embedding = {"model": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim}
                state = store.new_state(config.index, embedding, chunking)
            offset = 0
            for result, chunks, docs, record in pending:
                removed += store.remove_source(state, result.source)
                store.add(state, [c.to_dict() for c in chunks], vectors[offset : offset + len(chunks)], docs)
                state.manifest["files"][result.source] = record
                offset += len(chunks)
                added += len(chunks)
            report(0.92, "Writing index (FAISS, BM25, metadata)")
            state = store.commit(state)
            timings["write_s"] = time.perf_counter() - t0
            totals = (len(state.chunks), len(state.manifest["files"]), state.generation)
    timings = {k: round(v, 3) for k, v in timings.items()}
    out = IngestReport(
        index=config.index,
        files=results,
        chunks_added=added,
        chunks_removed=removed,
        total_chunks=totals[0],
        total_files=totals[1],
        generation=totals[2],
        seconds=round(time.perf_counter() - started, 3),
        timings=timings,
    )
    report(1.0, f"{added} chunks added, {removed} removed; {len(out.errors)} files with errors")
    return out


def _prepare_isolated(source, path, *args):
    """Run :func:`_prepare_file` so that nothing one file does, whatever it raises, stops the others.

    The loaders turn every failure they know into a LoadError with a message; this catches the rest (a parser
    bug, a RecursionError, MemoryError) and makes it that file's error. The traceback is logged at DEBUG only:
    the CLI and the job log (shown on the Documents page) carry the one-line reason.
    """
    try:
        return _prepare_file(source, path, *args)
    except jobs.JobCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as this file's error; the other files go on
        detail = " ".join(str(exc).split())[:200]
        message = f"Could not read this file ({type(exc).__name__}{': ' + detail if detail else ''})"
        logger.warning("%s: %s", path, message)
        logger.debug("Traceback of the failure on %s", path, exc_info=exc)
        return FileResult(source, str(path), "error", message=message), None, None, None


def _prepare_file(source, path, known, counter, config, options, seen):
    """Return (result, chunks or None, docs, manifest record) for one file; a LoadError becomes its result."""
    if source in seen:
        return FileResult(source, str(path), "error", message="Another file in this batch has the same name"), *(
            None,
        ) * 3
    seen.add(source)
    if not path.exists():
        return FileResult(source, str(path), "error", message=f"File not found: {path}"), None, None, None
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        message = (
            f"Unsupported file type '{path.suffix or path.name}'; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
        return FileResult(source, str(path), "skipped", message=message), None, None, None
    try:
        # stat() first: an oversized file is refused unread; otherwise it is read once, hashed on the way.
        raw, sha = read_file(path, options.max_file_mb)
    except LoadError as exc:
        return FileResult(source, str(path), "error", message=str(exc)), None, None, None
    load_opts = {"text_field": config.text_field}
    previous = known.get(source)
    if previous and previous["sha256"] == sha and previous.get("options") == load_opts:
        result = FileResult(source, str(path), "unchanged", previous["pages"], previous["chunks"], "Unchanged")
        return result, None, None, None
    try:
        loaded = load_file(path, options, data=raw)
    except LoadError as exc:
        return FileResult(source, str(path), "error", message=str(exc)), None, None, None
    chunks = chunk_units(loaded.units, source, counter, config.chunk_tokens, config.overlap_tokens)
    docs = [
        {"source": source, "page": u.page, "record": u.record, "text": u.text, "metadata": u.metadata}
        for u in loaded.units
    ]
    status = "updated" if previous else "added"
    result = FileResult(source, str(path), status, len(loaded.units), len(chunks), status.capitalize(), loaded.notes)
    record = {
        "sha256": sha,
        "size_bytes": len(raw),
        "format": loaded.format,
        "pages": len(loaded.units),
        "chunks": len(chunks),
        "options": load_opts,
        "path": str(path.resolve()),
        "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return result, chunks, docs, record


def _check_compatible(name: str, manifest: dict, embedder: Embedder, chunking: dict) -> None:
    have = manifest["embedding"]
    embedding = {"model": embedder.name, "fingerprint": embedder.fingerprint}
    if (have["model"], have["fingerprint"]) != (embedding["model"], embedding["fingerprint"]):
        raise store.RagIndexError(
            f"Index {name} was built with embedding model {have['model']} ({have['fingerprint']}); "
            f"{embedding['model']} ({embedding['fingerprint']}) was asked for. Vectors from different models cannot "
            f"be mixed: re-index required (`workbench index reindex {name} --embedding-model ...`)."
        )
    if manifest["chunking"] != chunking:
        raise store.RagIndexError(
            f"Index {name} uses chunking {manifest['chunking']}, not {chunking}: re-index required "
            "to change chunk sizes, or ingest with the index's settings."
        )


if __name__ == "__main__":

    def _work(config: dict, reporter: jobs.Reporter) -> dict:
        def progress(fraction, message, item=None):
            if item is not None:
                reporter.event("item", **item)
            reporter.progress(fraction, message)

        return ingest(IngestConfig.from_dict(config), progress=progress).to_dict()

    jobs.run_child(_work)
