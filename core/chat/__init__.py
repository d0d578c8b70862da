"""Cited chat: conversation persistence (SQLite) and transcript export."""
