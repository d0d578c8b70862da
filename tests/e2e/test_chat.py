"""Chat in a real browser: ask a question, see the streamed answer, its source cards and the disclaimer."""

import pytest
from playwright.sync_api import expect

from core.config import IngestConfig
from core.rag.ingest import ingest
from tests.core.rag.conftest import DOCS
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_ask_and_see_an_answer_with_a_source_card(app_url, app_home, page, tmp_path, monkeypatch, embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("WORKBENCH_HOME", str(app_home))  # the running app's home
    ingest(IngestConfig(index="demo", paths=[str(tmp_path)]), embedder=embedder)
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Chat").click()
    box = page.locator('textarea[data-testid="stChatInputTextArea"]')
    box.fill("What do statins lower?")
    box.press("Enter")
    expect(page.get_by_text("[S1] statins.txt").or_(page.get_by_text("statins.txt").first)).to_be_visible(
        timeout=180_000
    )
    expect(page.get_by_text("Sources (3").first).to_be_visible()
    expect(page.get_by_text("not a medical device").last).to_be_visible()
    screenshot(page, "chat-answer")
