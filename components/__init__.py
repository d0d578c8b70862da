"""Streamlit pages (UI only). PAGES is the single ordered list the sidebar is built from."""

from components.jobs_page import JobsPage
from components.models_page import ModelsPage

PAGES = [ModelsPage(), JobsPage()]
