"""MedGemma Workbench library: RAG, chat, fine-tuning, evaluation, safety and export, with no Streamlit."""

__version__ = "0.1.0"
