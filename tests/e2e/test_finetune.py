"""Fine-tune page in a real browser: check the demo dataset and see the examples with their trained answers."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_check_dataset_shows_the_token_preview(app_url, page):
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Fine-tune").click()
    expect(page.get_by_role("heading", name="Fine-tune")).to_be_visible()
    expect(page.get_by_role("combobox", name="Dataset", exact=True)).to_have_value("data/finetune/medqa_demo.jsonl")
    page.get_by_role("button", name="Check dataset").click()
    expect(page.get_by_text("Usable rows")).to_be_visible(timeout=120_000)
    trained = page.locator("span.ft-trained")
    expect(trained.first).to_be_visible()
    expect(page.locator("span.ft-masked").nth(1)).to_contain_text("<start_of_turn>user")
    assert trained.count() >= 3  # the legend plus one answer per previewed example
    trained.nth(1).scroll_into_view_if_needed()  # the main area scrolls by itself: bring the preview into the shot
    screenshot(page, "finetune-check")
