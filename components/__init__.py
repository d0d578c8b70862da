"""Streamlit pages (UI only). PAGES is the single ordered list the sidebar is built from."""

from components.documents_page import DocumentsPage
from components.jobs_page import JobsPage
from components.models_page import ModelsPage

PAGES = [DocumentsPage(), ModelsPage(), JobsPage()]
