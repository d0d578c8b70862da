"""The app as a user sees it: every page in the sidebar, the Models page with the embedded models ready."""

import pytest
from playwright.sync_api import expect

from components import PAGES
from core.models import embedded
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sidebar_lists_every_page_and_models_are_ready(app_url, page):
    page.goto(app_url)
    sidebar = page.get_by_test_id("stSidebar")
    for p in PAGES:
        expect(sidebar.get_by_role("link", name=p.title)).to_be_visible()
    expect(sidebar.get_by_text("Not a medical device")).to_be_visible()

    sidebar.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.get_by_text(f"{len(embedded.SPECS)} of {len(embedded.SPECS)} models ready")).to_be_visible()
    for spec in embedded.SPECS:
        card = page.locator(f".st-key-model-{spec.name}")
        expect(card).to_be_visible()
        expect(card.get_by_text("ready", exact=True)).to_be_visible()
    assert screenshot(page, "models-page").stat().st_size > 10_000


def test_jobs_page_opens_from_the_sidebar(app_url, page):
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.get_by_text("No jobs yet")).to_be_visible()
    screenshot(page, "jobs-page")


def test_evaluate_page_opens_with_the_demo_set_ready(app_url, page):
    page.goto(app_url)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Evaluate").click()
    expect(page.get_by_role("heading", name="Evaluate")).to_be_visible()
    expect(page.get_by_text("165 questions", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name="Start evaluation")).to_be_enabled()
    expect(page.get_by_text("No evaluation runs yet", exact=False)).to_be_visible()
