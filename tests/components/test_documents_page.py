"""Documents page through AppTest: ingest a folder as a job, see per-file status, search, remove a document."""

import time

from streamlit.testing.v1 import AppTest

from core import jobs
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


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_ingest_a_folder_as_a_job_and_see_each_file(tmp_path):
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert at.selectbox[0].value == "+ New index…"
    at.text_input[0].input("cardio")
    at.text_input[1].input(str(_folder(tmp_path)))
    _button(at, "Ingest").click().run()
    job = jobs.list_jobs()[0]
    assert job.title == "Ingest into cardio"
    deadline = time.time() + 120
    while not jobs.status(job.id).finished and time.time() < deadline:
        time.sleep(0.2)
    assert jobs.status(job.id).state == "done", jobs.status(job.id).log_tail
    at.run()
    table = at.dataframe[0].value
    statuses = dict(zip(table["file"], table["status"], strict=True))
    assert statuses == {"broken.json": "error", "flutter.md": "added", "potassium.md": "added", "statins.txt": "added"}
    assert "Invalid JSON" in table[table["file"] == "broken.json"]["message"].iloc[0]
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
