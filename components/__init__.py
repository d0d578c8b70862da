"""Streamlit pages (UI only). PAGES is the ordered list the sidebar is built from; the first is the landing page."""

from components.chat_page import ChatPage
from components.documents_page import DocumentsPage
from components.evaluate_page import EvaluatePage
from components.finetune_page import FinetunePage
from components.jobs_page import JobsPage
from components.models_page import ModelsPage
from components.safety_page import SafetyPage

PAGES = [ChatPage(), DocumentsPage(), FinetunePage(), EvaluatePage(), SafetyPage(), ModelsPage(), JobsPage()]
