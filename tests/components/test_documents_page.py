"""Documents page through AppTest: ingest a folder as a job, see per-file status, search, remove, re-index."""

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import jobs, paths
from core.config import IngestConfig
from core.rag import manage
from core.rag.ingest import ingest
from tests.core.rag.conftest import DOCS


def _app():
    from components.documents_page import DocumentsPage

    DocumentsPage().render()


def _folder(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / "broken.json").write_text("{nope")
    return folder


def _wait(job_id):
    deadline = time.time() + 120
    while not jobs.status(job_id).finished and time.time() < deadline:
        time.sleep(0.2)
    assert jobs.status(job_id).state == "done", jobs.status(job_id).log_tail


def _shown_text(at) -> str:
    """Everything the page shows as text: markdown, captions, code (job log), messages, table cells."""
    texts = [e.value for kind in ("markdown", "caption", "code", "error", "warning", "info", "success")
             for e in getattr(at, kind)]  # fmt: skip
    texts += [df.value.to_string() for df in at.dataframe]
    return "\n".join(str(t) for t in texts)


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_ingest_a_folder_as_a_job_and_see_each_file(tmp_path):
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert at.selectbox[0].value == "+ New index…"
    at.text_input[0].input("cardio")
    folder = _folder(tmp_path)
    (folder / "deep.json").write_text("[" * 100_000)  # RecursionError in json.loads
    (folder / "odd16.txt").write_bytes("Sinus rhythm.".encode("utf-16") + b"x")  # UnicodeDecodeError
    at.text_input[1].input(str(folder))
    _button(at, "Ingest").click().run()
    job = jobs.list_jobs()[0]
    assert job.title == "Ingest into cardio" and job.module == "core.rag.ingest"
    _wait(job.id)
    at.run()
    table = at.dataframe[0].value
    statuses = dict(zip(table["file"], table["status"], strict=True))
    assert statuses == {"broken.json": "error", "deep.json": "error", "flutter.md": "added", "odd16.txt": "error",
                        "potassium.md": "added", "statins.txt": "added"}  # fmt: skip
    assert "Invalid JSON" in table[table["file"] == "broken.json"]["message"].iloc[0]
    assert "nested too deeply" in table[table["file"] == "deep.json"]["message"].iloc[0]
    assert not at.exception and "Traceback" not in _shown_text(at)
    assert [i.name for i in manage.list_indices()] == ["cardio"]


def test_search_and_remove_a_document(tmp_path):
    ingest(IngestConfig(index="cardio", paths=[str(_folder(tmp_path))]))
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert at.selectbox[0].value == "cardio"
    assert at.metric[0].label == "Documents" and at.metric[0].value == "3"
    query = next(t for t in at.text_input if t.label == "Query")
    query.input("atrial flutter sawtooth waves")
    _button(at, "Search").click().run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**[1]")]
    assert cards and "flutter" in cards[0]
    _button(at, "Remove document").click().run()  # the first document in the list: flutter.md
    assert "Removed flutter.md" in at.success[0].value
    assert [f["source"] for f in manage.inspect_index("cardio").files] == ["potassium.md", "statins.txt"]


def test_uploads_with_the_same_name_are_both_kept():
    at = AppTest.from_function(_app, default_timeout=60).run()
    at.text_input[0].input("notes")
    at.file_uploader(key="documents.uploads").set_value([
        ("notes.md", b"Atrial flutter shows sawtooth waves.", "text/markdown"),
        ("notes.md", b"Statins lower LDL cholesterol.", "text/markdown"),
    ]).run()  # fmt: skip
    _button(at, "Ingest").click().run()
    _wait(jobs.list_jobs()[0].id)
    batch = next(paths.uploads_dir().iterdir())
    assert sorted(p.name for p in batch.iterdir()) == ["notes (2).md", "notes.md"]
    assert [f["source"] for f in manage.inspect_index("notes").files] == ["notes (2).md", "notes.md"]


def test_reindex_form_refuses_a_bad_overlap_and_starts_a_typed_job(tmp_path):
    ingest(IngestConfig(index="cardio", paths=[str(_folder(tmp_path))]))
    at = AppTest.from_function(_app, default_timeout=60).run()
    at.number_input(key="docs.reindex_overlap").set_value(150)  # the index's chunks are 200 tokens
    _button(at, "Re-index").click().run()
    assert "overlap_tokens must be at most half of chunk_tokens" in at.error[0].value
    assert jobs.list_jobs() == []
    at.number_input(key="docs.reindex_chunk").set_value(64)
    at.number_input(key="docs.reindex_overlap").set_value(8)  # form values are sent with the submit click
    _button(at, "Re-index").click().run()
    assert not at.error and "Re-index started as job" in at.success[0].value
    job = jobs.list_jobs()[0]
    config = json.loads((Path(job.dir) / "config.json").read_text())
    assert job.module == "core.rag.manage" and config == {"name": "cardio", "embedding_model": "all-minilm-l6-v2",
                                                          "chunk_tokens": 64, "overlap_tokens": 8}  # fmt: skip
    _wait(job.id)
    assert manage.inspect_index("cardio").chunking == {"chunk_tokens": 64, "overlap_tokens": 8}
