"""``workbench ingest``, ``workbench search`` and ``workbench index ...``.

Exit codes: 0 done, 2 refused (bad config, no such index, ...), 4 ingest done but some files had errors.
"""

import argparse

from core.cliutil import add_command, config_option, emit, out
from core.config import IngestConfig, ReindexConfig
from core.rag import manage
from core.rag.ingest import ingest
from core.rag.retrieve import MODES

# The IngestConfig fields that `workbench ingest` takes as flags (names and defaults come from the config).
INGEST_OPTIONS = ("embedding_model", "chunk_tokens", "overlap_tokens", "text_field", "max_file_mb", "max_pdf_pages",
                  "max_records", "max_text_mb", "batch_size")  # fmt: skip


def _ingest(args: argparse.Namespace) -> int:
    def progress(fraction, message, item=None):
        if args.json:
            return
        if item is not None:
            line = f"  {item['status']:<9} {item['source']}"
            out(
                line
                + (
                    f"  — {item['message']}"
                    if item["status"] in ("error", "skipped")
                    else f"  ({item['chunks']} chunks)"
                )
            )
        else:
            out(f"[{fraction * 100:5.1f}%] {message}")

    config = IngestConfig(index=args.index, paths=args.paths, **{name: getattr(args, name) for name in INGEST_OPTIONS})
    report = ingest(config, progress=progress)
    human = (
        f"index {report.index}: {report.chunks_added} chunks added, {report.chunks_removed} removed, "
        f"{report.total_chunks} in {report.total_files} documents ({report.seconds:.1f} s); "
        f"{len(report.errors)} files with errors"
    )
    emit(args, report.to_dict(), human)
    return 0 if not report.errors else 4


def _search(args: argparse.Namespace) -> int:
    hits = manage.search(args.index, args.query, k=args.k, mode=args.mode, min_score=args.min_score)
    lines = []
    for rank, hit in enumerate(hits, start=1):
        where = f"p.{hit.page}" if hit.page else (f"record {hit.record}" if hit.record else "")
        lines.append(f"{rank}. [{hit.score:.4f}] {hit.source} {where} {hit.start}-{hit.end}\n   {hit.text[:200]!r}")
    emit(args, [h.to_dict() for h in hits], "\n".join(lines) or "no hits")
    return 0


def _list(args: argparse.Namespace) -> int:
    infos = manage.list_indices()
    lines = [f"{i.name:<24} {len(i.files):>4} docs {i.chunks:>7} chunks  {i.embedding['model']}" for i in infos]
    emit(args, [i.to_dict() for i in infos], "\n".join(lines) or "no indices")
    return 0


def _show(args: argparse.Namespace) -> int:
    info = manage.inspect_index(args.name)
    lines = [f"{info.name}: {info.chunks} chunks, {info.size_bytes / 1e6:.1f} MB, embedding {info.embedding}, "
             f"chunking {info.chunking}"]  # fmt: skip
    lines += [
        f"  {f['source']:<48} {f['format']:<8} {f['pages']:>4} units {f['chunks']:>5} chunks" for f in info.files
    ]
    emit(args, info.to_dict(), "\n".join(lines))
    return 0


def _delete(args: argparse.Namespace) -> int:
    manage.store.delete_index(args.name)
    emit(args, {"deleted": args.name}, f"deleted index {args.name}")
    return 0


def _delete_doc(args: argparse.Namespace) -> int:
    removed = manage.delete_document(args.name, args.source)
    emit(args, {"index": args.name, "source": args.source, "chunks_removed": removed},
         f"removed {args.source} ({removed} chunks) from {args.name}")  # fmt: skip
    return 0


def _reindex(args: argparse.Namespace) -> int:
    config = ReindexConfig(name=args.name, embedding_model=args.embedding_model, chunk_tokens=args.chunk_tokens,
                           overlap_tokens=args.overlap_tokens)  # fmt: skip
    result = manage.reindex(config, progress=None if args.json else lambda f, m: out(f"[{f * 100:5.1f}%] {m}"))
    emit(args, result, f"re-indexed {args.name}: {result['chunks']} chunks in {result['seconds']:.1f} s")
    return 0


def add_commands(groups: argparse._SubParsersAction) -> None:
    """Register the RAG commands on the top-level sub-parsers."""
    h = IngestConfig.help
    p = add_command(groups, "ingest", _ingest, "add files or folders to a named index (unchanged files are skipped)")
    p.add_argument("paths", nargs="+", help=h("paths"))
    p.add_argument("--index", required=True, help=h("index"))
    for name in INGEST_OPTIONS:
        config_option(p, IngestConfig, name)  # --embedding-model, --chunk-tokens, ... with the config's defaults

    p = add_command(groups, "search", _search, "hybrid (dense + BM25) search of an index")
    p.add_argument("query")
    p.add_argument("--index", required=True)
    p.add_argument("-k", type=int, default=5, help="hits to return")
    p.add_argument("--mode", choices=MODES, default="hybrid")
    p.add_argument("--min-score", type=float, help="minimum cosine similarity of a hit to the query")

    index = groups.add_parser("index", help="manage RAG indices").add_subparsers(dest="action", required=True)
    add_command(index, "list", _list, "list indices")
    add_command(index, "show", _show, "show an index's documents and settings").add_argument("name")
    add_command(index, "delete", _delete, "delete an index").add_argument("name")
    p = add_command(index, "delete-doc", _delete_doc, "remove one document from an index")
    p.add_argument("name")
    p.add_argument("source", help="the document's name in the index (see `index show`)")
    p = add_command(index, "reindex", _reindex, "rebuild from stored texts (new embedding model or chunking)")
    p.add_argument("name", help=ReindexConfig.help("name"))
    config_option(p, ReindexConfig, "embedding_model", type=str)
    config_option(p, ReindexConfig, "chunk_tokens", type=int)
    config_option(p, ReindexConfig, "overlap_tokens", type=int)
