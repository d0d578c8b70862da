"""RAG benchmark: ingest throughput, re-ingest, search latency at 100k chunks and retrieval quality.

Everything runs through the real code (core.rag.ingest / index / retrieve); the baselines run in the same process.

- Ingest throughput (chunks/s): `core.rag.ingest.ingest` of data/corpus copied 4 times (load, chunk, embed, write
  FAISS + BM25 + metadata) into a fresh index, vs the floor: `SentenceTransformer.encode` of the very chunk texts
  that ended in the index (same batch size, normalised) plus `faiss.IndexFlatIP.add`. One Embedder serves both sides,
  so model loading is excluded from both. Each side runs 3 times, alternating; medians are reported.
  Target: ours >= 0.85 x floor.
- Re-ingest of the unchanged corpus into the same index: seconds, and the ratio to the first ingest (target <= 2%).
- Search latency over 200 queries on a 100k-chunk index built with the real storage API (`index.new_state`, `add`,
  `commit`, `load`) from synthetic text (words drawn with the corpus' own word frequencies) and random unit vectors:
  p50/p95 of `retrieve(..., mode="hybrid", k=5)` with the query vector precomputed (target p95 <= 20 ms), and of
  query embedding + retrieve; dense-only and BM25-only as well. Also the build time (BM25 part separately) and the
  size of the vectors file.
- Retrieval quality on data/eval/retrieval.jsonl against data/corpus: recall@5 and MRR@10 for dense, BM25 and hybrid.

Prints one JSON object on stdout; progress goes to stderr.
"""

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CORPUS = REPO / "data" / "corpus"
EVAL = REPO / "data" / "eval" / "retrieval.jsonl"
MODEL = "all-minilm-l6-v2"
BATCH = 64
REPEAT = 3
COPIES = 4
N_SYNTH = 100_000
N_QUERIES = 200


def log(message: str) -> None:
    print(f"[bench-ingest] {message}", file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    """Percentile (linear interpolation) of samples in seconds, returned in milliseconds."""
    import numpy as np

    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 3)


def bench_ingest(emb, work: Path) -> tuple[dict, dict]:
    """Ours (whole pipeline) vs the floor (encode + IndexFlatIP.add), then re-ingest of the unchanged corpus."""
    import faiss

    from core.config import IngestConfig
    from core.rag import index as store
    from core.rag.ingest import ingest

    corpus = work / "corpus4"
    for i in range(COPIES):
        shutil.copytree(CORPUS, corpus / f"copy{i}")

    ours, floor, reports, reingest = [], [], [], None
    texts = None
    for rep in range(REPEAT):
        config = IngestConfig(index=f"bench{rep}", paths=[str(corpus)], batch_size=BATCH)
        start = time.perf_counter()
        report = ingest(config, embedder=emb)
        ours.append(time.perf_counter() - start)
        reports.append(report)
        errors = [f"{f.source}: {f.message}" for f in report.errors]
        if errors:
            log(f"ingest errors: {errors}")
        log(f"ours #{rep}: {report.chunks_added} chunks in {ours[-1]:.2f}s {report.timings}")
        if rep == 0:
            start = time.perf_counter()
            again = ingest(config, embedder=emb)
            reingest = time.perf_counter() - start
            log(f"re-ingest unchanged: {reingest:.3f}s ({again.chunks_added} added, {again.chunks_removed} removed)")
            texts = [c["text"] for c in store.load(config.index).chunks]

        start = time.perf_counter()
        vectors = emb.model.encode(
            texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        floor.append(time.perf_counter() - start)
        log(f"floor #{rep}: {len(texts)} chunks in {floor[-1]:.2f}s")

    n = reports[0].chunks_added
    ours_s, floor_s = statistics.median(ours), statistics.median(floor)
    median_report = sorted(reports, key=lambda r: r.seconds)[len(reports) // 2]
    ingest_out = {
        "ours_chunks_per_s": round(n / ours_s, 1),
        "floor_chunks_per_s": round(len(texts) / floor_s, 1),
        "ratio": round((n / ours_s) / (len(texts) / floor_s), 3),
        "target_ratio": 0.85,
        "chunks": n,
        "files": len(reports[0].files),
        "ours_s": round(ours_s, 3),
        "floor_s": round(floor_s, 3),
        "ours_runs_s": [round(s, 3) for s in ours],
        "floor_runs_s": [round(s, 3) for s in floor],
        "ours_breakdown_s": median_report.timings,
    }
    reingest_out = {
        "first_s": round(ours[0], 3),
        "unchanged_s": round(reingest, 4),
        "ratio": round(reingest / ours[0], 4),
        "target_ratio": 0.02,
    }
    return ingest_out, reingest_out


def corpus_vocabulary() -> tuple[list[str], list[float]]:
    """Words of the text corpus files and their relative frequencies (the synthetic text's unigram model)."""
    counts = Counter()
    for path in sorted(CORPUS.iterdir()):
        if path.suffix in (".md", ".txt", ".csv", ".json", ".jsonl"):
            counts.update(re.findall(r"[a-z][a-z-]{2,}", path.read_text(encoding="utf-8", errors="replace").lower()))
    words = sorted(counts)
    total = sum(counts.values())
    return words, [counts[w] / total for w in words]


def bench_search(emb) -> dict:
    """Latency of retrieve() on a synthetic 100k-chunk index written and read back by the storage API."""
    import bm25s
    import numpy as np

    from core.rag import index as store
    from core.rag.retrieve import retrieve

    words, probs = corpus_vocabulary()
    vocab = np.asarray(words, dtype=object)
    rng = np.random.default_rng(0)
    draws = rng.choice(len(words), size=(N_SYNTH, 40), p=probs)
    texts = [" ".join(vocab[row]) + "." for row in draws]
    del draws
    vectors = rng.standard_normal((N_SYNTH, emb.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    per_doc = 50
    chunks = [
        {"id": f"syn{i:06d}", "source": f"synthetic/doc{i // per_doc:05d}.txt", "page": None, "record": None,
         "start": 0, "end": len(t), "text": t, "metadata": {}}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    log(f"synthetic corpus: {N_SYNTH} chunks, vocabulary {len(words)} words")

    # Time the BM25 part of commit() by wrapping (not replacing) the functions it calls.
    bm25_time = [0.0]

    def timing(fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                bm25_time[0] += time.perf_counter() - t0

        return wrapper

    orig = (store.bm25_tokens, bm25s.BM25.index, bm25s.BM25.save)
    name = "synthetic100k"
    start = time.perf_counter()
    state = store.new_state(
        name,
        {"model": emb.name, "fingerprint": emb.fingerprint, "dim": emb.dim},
        {"chunk_tokens": 200, "overlap_tokens": 40},
    )
    store.add(state, chunks, vectors, docs=[])
    for d in range(0, N_SYNTH, per_doc):
        state.manifest["files"][f"synthetic/doc{d // per_doc:05d}.txt"] = {
            "sha256": "", "size_bytes": 0, "format": "txt", "pages": 1, "chunks": per_doc,
            "options": {"text_field": None}, "path": "", "ingested_at": "",
        }  # fmt: skip
    add_s = time.perf_counter() - start
    store.bm25_tokens, bm25s.BM25.index, bm25s.BM25.save = (timing(f) for f in orig)
    try:
        t0 = time.perf_counter()
        store.commit(state)
        commit_s = time.perf_counter() - t0
    finally:
        store.bm25_tokens, bm25s.BM25.index, bm25s.BM25.save = orig
    del state, chunks, vectors, texts
    t0 = time.perf_counter()
    state = store.load(name)
    load_s = time.perf_counter() - t0
    gen_dir = store.index_dir(name) / f"gen-{state.generation:06d}"
    log(f"built in {add_s + commit_s:.1f}s (add {add_s:.1f}s, commit {commit_s:.1f}s of which BM25 "
        f"{bm25_time[0]:.1f}s), loaded in {load_s:.1f}s")  # fmt: skip

    qrng = np.random.default_rng(1)
    queries = [
        " ".join(vocab[qrng.choice(len(words), size=int(qrng.integers(3, 11)), p=probs)]) for _ in range(N_QUERIES)
    ]
    qvecs = emb.encode(queries)
    for q, v in zip(queries[:5], qvecs[:5], strict=True):  # warm-up: first-call costs (id map, caches)
        for mode in ("hybrid", "dense", "bm25"):
            retrieve(state, q, v, k=5, mode=mode)

    def latencies(mode: str, embed: bool) -> list[float]:
        samples = []
        for q, v in zip(queries, qvecs, strict=True):
            t0 = time.perf_counter()
            if embed:
                v = emb.encode([q])[0]
            retrieve(state, q, v, k=5, mode=mode)
            samples.append(time.perf_counter() - t0)
        return samples

    excl = latencies("hybrid", False)
    incl = latencies("hybrid", True)
    dense = latencies("dense", False)
    bm25 = latencies("bm25", False)
    out = {
        "chunks": len(state.chunks),
        "build_s": round(add_s + commit_s, 2),
        "add_s": round(add_s, 2),
        "commit_s": round(commit_s, 2),
        "bm25_build_s": round(bm25_time[0], 2),
        "load_s": round(load_s, 2),
        "vectors_file_bytes": (gen_dir / "vectors.faiss").stat().st_size,
        "index_size_bytes": state.manifest["stats"]["size_bytes"],
        "p50_ms_excl_embedding": pct(excl, 50),
        "p95_ms_excl_embedding": pct(excl, 95),
        "p50_ms_incl_embedding": pct(incl, 50),
        "p95_ms_incl_embedding": pct(incl, 95),
        "dense_only_p50_ms": pct(dense, 50),
        "dense_only_p95_ms": pct(dense, 95),
        "bm25_only_p50_ms": pct(bm25, 50),
        "bm25_only_p95_ms": pct(bm25, 95),
        "target_p95_ms": 20,
    }
    store.delete_index(name)
    return out


def bench_quality(emb) -> dict:
    """recall@5 and MRR@10 on data/eval/retrieval.jsonl for dense, BM25 and hybrid retrieval."""
    from core.config import IngestConfig
    from core.rag import index as store
    from core.rag.ingest import ingest
    from core.rag.retrieve import retrieve

    report = ingest(IngestConfig(index="quality", paths=[str(CORPUS)], batch_size=BATCH), embedder=emb)
    if report.errors:
        log(f"quality ingest errors: {[f.source for f in report.errors]}")
    state = store.load("quality")
    items = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    qvecs = emb.encode([it["question"] for it in items])
    out = {"n": len(items), "chunks": len(state.chunks)}
    for mode in ("dense", "bm25", "hybrid"):
        recall = mrr = 0.0
        for it, v in zip(items, qvecs, strict=True):
            hits = retrieve(state, it["question"], v, k=10, mode=mode)
            gold_page = it.get("gold_page")
            for rank, hit in enumerate(hits, start=1):
                if hit.source == it["gold_source"] and (gold_page is None or hit.page == gold_page):
                    recall += rank <= 5
                    mrr += 1.0 / rank
                    break
        out[mode] = {"recall@5": round(recall / len(items), 4), "mrr": round(mrr / len(items), 4)}
        log(f"quality {mode}: {out[mode]}")
    return out


def main():
    os.environ.setdefault("WORKBENCH_EMBEDDED_DIR", str(REPO / "models" / "embedded"))
    home = tempfile.mkdtemp(prefix="wb-bench-ingest-")
    os.environ["WORKBENCH_HOME"] = home
    import torch

    from core.rag.embed import Embedder

    try:
        t0 = time.perf_counter()
        emb = Embedder(MODEL)
        emb.encode(["warm-up sentence about the QT interval"] * 8)
        log(f"embedder loaded in {time.perf_counter() - t0:.1f}s")
        ingest_out, reingest_out = bench_ingest(emb, Path(home))
        search_out = bench_search(emb)
        quality_out = bench_quality(emb)
    finally:
        if not os.environ.get("WORKBENCH_BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)

    print(json.dumps({
        "ingest": ingest_out,
        "reingest": reingest_out,
        "search_100k": search_out,
        "retrieval": quality_out,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
