"""Ingest, search, re-ingest, update, delete, re-index and crash safety on a real FAISS + BM25 index."""

import os
import shutil
import signal
import time

import pytest

from core import jobs
from core.config import ConfigError, IngestConfig
from core.models import registry
from core.rag import index as store
from core.rag import manage
from core.rag.ingest import ingest
from tests.conftest import REPO_ROOT


def run(corpus_or_paths, embedder, **kwargs):
    paths = [str(p) for p in (corpus_or_paths if isinstance(corpus_or_paths, list) else [corpus_or_paths])]
    return ingest(IngestConfig(index=kwargs.pop("index", "t"), paths=paths, **kwargs), embedder=embedder)


def top(query, embedder, mode="hybrid", name="t"):
    return manage.search(name, query, k=3, mode=mode, embedder=embedder)[0]


def test_ingest_then_the_known_chunk_ranks_first(corpus, embedder):
    report = run(corpus, embedder)
    assert [f.status for f in report.files] == ["added"] * 3
    assert report.total_chunks == report.chunks_added >= 3
    for mode in ("hybrid", "dense", "bm25"):
        hit = top("atrial flutter sawtooth waves", embedder, mode)
        assert hit.source == "flutter.md"
        assert (corpus / "flutter.md").read_text()[hit.start : hit.end] == hit.text
    assert top("muscle pain from cholesterol drugs", embedder, "dense").source == "statins.txt"


def test_search_hits_have_the_documented_fields(corpus, embedder):
    run(corpus, embedder)
    hit = top("peaked T waves", embedder).to_dict()
    assert {"chunk_id", "source", "page", "start", "end", "score", "text"} <= set(hit)
    assert hit["source"] == "potassium.md"


def test_reingesting_unchanged_files_does_nothing(corpus, embedder):
    first = run(corpus, embedder)
    second = run(corpus, embedder)
    assert [f.status for f in second.files] == ["unchanged"] * 3
    assert second.chunks_added == 0 and second.generation == first.generation
    assert second.total_chunks == first.total_chunks


def test_a_changed_file_replaces_its_old_chunks(corpus, embedder):
    first = run(corpus, embedder)
    (corpus / "statins.txt").write_text("Statins reduce cardiovascular events. Rhabdomyolysis is rare.")
    second = run(corpus, embedder)
    assert {f.source: f.status for f in second.files}["statins.txt"] == "updated"
    state = store.load("t")
    assert sum(c["source"] == "statins.txt" for c in state.chunks) == second.chunks_added
    assert state.vectors.ntotal == len(state.chunks) == second.total_chunks
    assert not any("Muscle aches" in c["text"] for c in state.chunks)
    assert top("rhabdomyolysis", embedder, "bm25").source == "statins.txt"
    assert second.total_chunks == first.total_chunks - first.files[1].chunks + second.chunks_added


def test_bad_files_are_reported_and_the_index_keeps_what_it_had(corpus, embedder, tmp_path):
    run(corpus, embedder)
    before = store.read_manifest("t")["files"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "broken.json").write_text("{oops")
    (bad / "scan.docx").write_bytes(b"PK")
    (bad / "good.md").write_text("Pericarditis causes pleuritic chest pain relieved by sitting forward.")
    report = run([bad], embedder)
    statuses = {f.source: (f.status, f.message) for f in report.files}
    assert statuses["empty.txt"][0] == "error" and "empty" in statuses["empty.txt"][1]
    assert statuses["broken.json"][0] == "error" and "Invalid JSON" in statuses["broken.json"][1]
    assert statuses["scan.docx"][0] == "skipped" and "Unsupported" in statuses["scan.docx"][1]
    assert statuses["good.md"][0] == "added"
    after = store.read_manifest("t")["files"]
    assert {k: v["sha256"] for k, v in before.items()} == {k: after[k]["sha256"] for k in before}
    assert top("atrial flutter sawtooth waves", embedder).source == "flutter.md"


def test_a_missing_path_is_a_per_file_error(corpus, embedder):
    report = run([corpus / "flutter.md", corpus / "nope.md"], embedder)
    assert [(f.source, f.status) for f in report.files] == [("flutter.md", "added"), ("nope.md", "error")]


def test_another_embedding_model_or_chunking_needs_reindex(corpus, embedder):
    run(corpus, embedder)
    registry.add_model(str(embedder.path), name="minilm-other")
    with pytest.raises(store.RagIndexError, match="re-index required"):
        run(corpus, None, embedding_model="minilm-other")
    with pytest.raises(store.RagIndexError, match="re-index required"):
        run(corpus, embedder, chunk_tokens=100)
    result = manage.reindex("t", embedding_model="minilm-other", chunk_tokens=64, overlap_tokens=8)
    assert result["embedding"]["model"] == "minilm-other" and result["chunking"]["chunk_tokens"] == 64
    assert manage.inspect_index("t").chunking == {"chunk_tokens": 64, "overlap_tokens": 8}
    assert manage.search("t", "atrial flutter sawtooth waves", k=1)[0].source == "flutter.md"


def test_delete_a_document_and_an_index(corpus, embedder):
    run(corpus, embedder)
    removed = manage.delete_document("t", "flutter.md")
    assert removed > 0
    state = store.load("t")
    assert all(c["source"] != "flutter.md" for c in state.chunks) and state.vectors.ntotal == len(state.chunks)
    assert all(h.source != "flutter.md" for h in manage.search("t", "atrial flutter sawtooth", k=5, mode="bm25"))
    with pytest.raises(store.RagIndexError, match="no document"):
        manage.delete_document("t", "flutter.md")
    store.delete_index("t")
    assert store.list_names() == []
    with pytest.raises(store.RagIndexError, match="No index"):
        manage.search("t", "anything")


def test_min_score_filters_weak_hits(corpus, embedder):
    run(corpus, embedder)
    assert (
        manage.search("t", "quarterly tax returns for small businesses", k=3, min_score=0.5, embedder=embedder) == []
    )


def test_invalid_config_is_refused():
    with pytest.raises(ConfigError, match="Invalid index name"):
        IngestConfig(index="../evil", paths=["x"])
    with pytest.raises(ConfigError, match="overlap_tokens"):
        IngestConfig(index="ok", paths=["x"], chunk_tokens=100, overlap_tokens=90)
    with pytest.raises(ConfigError, match="Unknown IngestConfig keys: chunk_size"):
        IngestConfig.from_dict({"index": "ok", "chunk_size": 3})


def test_leftovers_of_a_crashed_writer_do_not_break_loading(corpus, embedder):
    first = run(corpus, embedder)
    junk = store.index_dir("t") / f"gen-{first.generation + 1:06d}"
    junk.mkdir()
    (junk / "vectors.faiss").write_bytes(b"half written")
    assert store.load("t").generation == first.generation
    (corpus / "new.md").write_text("Syncope is a transient loss of consciousness.")
    assert run(corpus, embedder).generation == first.generation + 1
    assert [p.name for p in store.index_dir("t").glob("gen-*")] == [f"gen-{first.generation + 1:06d}"]


@pytest.mark.slow
def test_killing_an_ingest_job_leaves_the_last_good_index(corpus, embedder, tmp_path):
    run(corpus, embedder)
    good = store.load("t")
    big = tmp_path / "big"
    for copy in range(3):
        shutil.copytree(REPO_ROOT / "data" / "corpus", big / f"copy{copy}")
    job_id = jobs.launch("core.rag.ingest", IngestConfig(index="t", paths=[str(big)]).to_dict())
    deadline = time.time() + 120
    while (jobs.status(job_id).fraction or 0) < 0.35 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(jobs.status(job_id).pid, signal.SIGKILL)  # no chance to clean up, like the OOM killer
    while not jobs.status(job_id).finished:
        time.sleep(0.05)
    assert jobs.status(job_id).state == "failed"
    after = store.load("t")
    assert after.generation == good.generation and len(after.chunks) == len(good.chunks)
    assert top("atrial flutter sawtooth waves", embedder).source == "flutter.md"
