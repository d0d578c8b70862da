"""Documents page in a real browser: upload files (two bad), watch the ingest job, search the new index."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_upload_ingest_and_search(app_url, page, tmp_path):
    good = tmp_path / "flutter notes.md"
    good.write_text("# Atrial flutter\n\nThe ECG shows sawtooth flutter waves in leads II, III and aVF.")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)  # made json.loads raise RecursionError, which used to fail the whole ingest
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Documents").click()
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    page.get_by_label("New index name").fill("uploads")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files([str(good), str(bad), str(deep)])
    expect(page.get_by_text("broken.json")).to_be_visible()
    page.get_by_role("button", name="Ingest").click()
    expect(page.get_by_text(":green-badge[done]").or_(page.get_by_text("done", exact=True))).to_be_visible(
        timeout=120_000
    )
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)
    screenshot(page, "documents-ingest")
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_role("combobox", name="Index")).to_have_value("uploads")  # the new index is selected
    expect(page.get_by_role("button", name="Done")).to_have_count(0)
    page.get_by_role("tab", name="Search").click()
    expect(page.get_by_label("Query")).to_be_visible()
    page.get_by_label("Query").fill("sawtooth flutter waves")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("[1] flutter notes.md")).to_be_visible(timeout=60_000)
    screenshot(page, "documents-search")
