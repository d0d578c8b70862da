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


def test_stop_keeps_the_screened_partial_and_frees_the_model(app_url, app_home, page, monkeypatch):
    from core.chat import store as chats

    monkeypatch.setenv("WORKBENCH_HOME", str(app_home))
    settings = {"model": "smollm2-135m-instruct", "index": None, "top_k": 5, "temperature": 0.0,
                "max_new_tokens": 1024, "min_relevance": 0.3, "adapter": None}  # fmt: skip
    conversation = chats.create_conversation("Long story", settings=settings)
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Chat").click()
    expect(page.get_by_text("Settings: smollm2-135m-instruct")).to_be_visible()  # the new conversation is open
    box = page.locator('textarea[data-testid="stChatInputTextArea"]')
    # A long reply with no sentence end: the repetition guard never ends it early, so Stop always comes first.
    box.fill("Count from 1 to 1000, separated by commas.")
    box.press("Enter")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible(timeout=120_000)  # the answer is streaming
    page.wait_for_timeout(1000)
    screenshot(page, "chat-streaming")
    stop.click()
    deadline_s = 60
    for _ in range(deadline_s * 10):
        messages = chats.list_messages(conversation.id)
        if len(messages) == 2:
            break
        page.wait_for_timeout(100)
    user, answer = chats.list_messages(conversation.id)
    assert answer.meta["stopped"] and answer.content.endswith("[stopped]")
    assert answer.safety["output"]["disclaimer"]  # the stored partial went through the output screen
    screenshot(page, "chat-stopped")
    expect(page.get_by_text("[stopped]").first).to_be_visible(timeout=30_000)
