"""Ingest, search, re-ingest, update, delete, re-index and crash safety on a real FAISS + BM25 index."""

import builtins
import io
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from core import jobs
from core.config import ConfigError, IngestConfig, ReindexConfig
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
    result = manage.reindex(ReindexConfig("t", embedding_model="minilm-other", chunk_tokens=64, overlap_tokens=8))
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
    # The junk was replaced by the new generation; the previous one stays for readers until the next commit.
    names = sorted(p.name for p in store.index_dir("t").glob("gen-*"))
    assert names == [f"gen-{first.generation:06d}", f"gen-{first.generation + 1:06d}"]
    assert store.load("t").generation == first.generation + 1


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


def _hostile_folder(tmp_path) -> Path:
    """A good file among files that each break a different part of loading."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "good.md").write_text("Pericarditis causes pleuritic chest pain relieved by sitting forward.")
    (folder / "deep.json").write_text("[" * 100_000)
    (folder / "odd16.txt").write_bytes("Sinus rhythm.".encode("utf-16") + b"x")
    pdf = (REPO_ROOT / "data" / "corpus" / "heart_failure_guide.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(pdf[:9] + b"\x00garbage" * 50)  # a valid header, then nothing usable
    (folder / "many.jsonl").write_text("\n".join(json.dumps({"text": f"Record {i} about syncope."}) for i in range(6)))
    with open(folder / "huge.txt", "wb") as handle:
        handle.truncate(3 * 1024**3)  # sparse: 3 GB that take no disk space
    return folder


def test_one_bad_file_never_stops_the_others(tmp_path, embedder, monkeypatch):
    folder = _hostile_folder(tmp_path)
    shutil.copy(REPO_ROOT / "data" / "corpus" / "heart_failure_guide.pdf", folder / "weird.pdf")
    # A failure the loader never heard of, as a library bug would raise it (pypdf's own errors are handled).
    from pypdf import PageObject

    def broken_extract(self, *args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(PageObject, "extract_text", broken_extract)
    opened, real_open = [], builtins.open

    def watching_open(file, *args, **kwargs):
        if Path(str(file)).name == "huge.txt":
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(io, "open", watching_open)
    report = run(folder, embedder, max_records=5)
    results = {f.source: f for f in report.files}
    assert results["good.md"].status == "added" and report.chunks_added >= 1
    expected = {
        "deep.json": "nested too deeply",
        "odd16.txt": "not valid UTF-16",
        "truncated.pdf": "corrupt",
        "weird.pdf": "Could not read this file (ZeroDivisionError: float division by zero)",
        "many.jsonl": "more than 5 records",
        "huge.txt": "3072.0 MB, over the 50 MB limit",
    }
    for source, message in expected.items():
        assert results[source].status == "error" and message in results[source].message, results[source]
        assert "Traceback" not in results[source].message and "\n" not in results[source].message
    assert opened == []  # the 3 GB file was refused from its size alone
    assert manage.search("t", "pleuritic chest pain", k=1, embedder=embedder)[0].source == "good.md"


def test_an_unexpected_error_in_one_file_is_logged_not_raised(tmp_path, embedder, monkeypatch, caplog):
    (tmp_path / "a.md").write_text("Atrial flutter shows sawtooth waves.")
    (tmp_path / "b.md").write_text("Statins lower LDL cholesterol.")
    from core.rag import ingest as ingest_module

    real = ingest_module.chunk_units

    def flaky(units, source, *args):
        if source == "a.md":
            raise RecursionError("maximum recursion depth exceeded")
        return real(units, source, *args)

    monkeypatch.setattr(ingest_module, "chunk_units", flaky)
    with caplog.at_level("DEBUG", logger="core.rag.ingest"):
        report = run(tmp_path, embedder)
    assert [(f.source, f.status) for f in report.files] == [("a.md", "error"), ("b.md", "added")]
    assert report.files[0].message == "Could not read this file (RecursionError: maximum recursion depth exceeded)"
    warning = next(r for r in caplog.records if r.levelname == "WARNING")
    assert "a.md" in warning.getMessage() and warning.exc_info is None  # the one-line reason
    assert any(r.levelname == "DEBUG" and r.exc_info for r in caplog.records)  # the traceback, for debugging


def test_reindex_refuses_an_overlap_the_chunker_cannot_use(corpus, embedder):
    run(corpus, embedder)  # chunking 200 / 40
    before = store.read_manifest("t")["generation"]
    with pytest.raises(ConfigError, match="overlap_tokens must be at most half of chunk_tokens"):
        manage.reindex(ReindexConfig("t", overlap_tokens=250))  # over the index's chunk size of 200
    with pytest.raises(ConfigError, match="overlap_tokens must be at most half"):
        manage.reindex(ReindexConfig("t", chunk_tokens=64))  # the kept overlap of 40 is over half of 64
    with pytest.raises(ConfigError, match="overlap_tokens must be at most half"):
        ReindexConfig("t", chunk_tokens=64, overlap_tokens=40)
    with pytest.raises(ConfigError, match="chunk_tokens must be between 16 and 8192"):
        ReindexConfig("t", chunk_tokens=8)
    with pytest.raises(ConfigError, match="Invalid index name"):
        ReindexConfig("demo\n")
    assert store.read_manifest("t")["generation"] == before  # nothing was written
    assert ReindexConfig.spec("chunk_tokens").high == IngestConfig.spec("chunk_tokens").high  # ranges typed once


def test_chunker_refuses_an_overlap_that_cannot_advance(embedder):
    from core.rag.chunking import TokenCounter, chunk_units
    from core.rag.loaders import Unit

    counter = TokenCounter(embedder.tokenizer_file)
    with pytest.raises(ValueError, match="below chunk_tokens"):
        chunk_units([Unit("word " * 500)], "a.txt", counter, 32, 40)


def test_start_launches_typed_jobs_with_their_stop_grace(corpus, embedder):
    from core.rag import ingest as ingest_module
    from core.rag.ingest import start

    job_id = start(IngestConfig(index="t", paths=[str(corpus)]))
    meta = json.loads((Path(jobs.status(job_id).dir) / "job.json").read_text())
    assert meta["module"] == "core.rag.ingest" and meta["stop_grace_s"] == ingest_module.STOP_GRACE_S
    _wait(job_id)
    assert jobs.status(job_id).result["total_files"] == 3
    job_id = manage.start_reindex(ReindexConfig("t", chunk_tokens=64, overlap_tokens=8))
    config = json.loads((Path(jobs.status(job_id).dir) / "config.json").read_text())
    assert config == {"name": "t", "embedding_model": None, "chunk_tokens": 64, "overlap_tokens": 8}
    _wait(job_id)
    assert manage.inspect_index("t").chunking == {"chunk_tokens": 64, "overlap_tokens": 8}
    with pytest.raises(ConfigError, match="at most half"):  # refused before any job starts
        manage.start_reindex(ReindexConfig("t", overlap_tokens=40))
    with pytest.raises(store.RagIndexError, match="No index named 'nope'"):
        manage.start_reindex(ReindexConfig("nope"))


def _wait(job_id, timeout_s=180):
    deadline = time.time() + timeout_s
    while not jobs.status(job_id).finished and time.time() < deadline:
        time.sleep(0.2)
    status = jobs.status(job_id)
    assert status.state == "done", status.log_tail
