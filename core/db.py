"""The workbench's SQLite database, with append-only numbered migrations (never edit one that has shipped)."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core import paths

# Append new migrations at the end; a database records which ones it has applied.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_models",
        """
        CREATE TABLE models (
            name TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            path TEXT,
            role TEXT NOT NULL,
            format TEXT NOT NULL,
            size_bytes INTEGER,
            sha256 TEXT,
            status TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL,
            checked_at TEXT
        );
        """,
    ),
    (
        "m002_safety_audit",
        """
        CREATE TABLE safety_audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            stage TEXT NOT NULL,
            rule_ids TEXT NOT NULL,
            action TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            text_len INTEGER NOT NULL
        );
        CREATE TABLE safety_rule_state (
            rule_id TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL,
            changed_at TEXT NOT NULL
        );
        """,
    ),
    (
        "m003_conversations",
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            settings TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '[]',
            citations TEXT NOT NULL DEFAULT '[]',
            safety TEXT NOT NULL DEFAULT 'null',
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
        """,
    ),
]


@contextmanager
def connect(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """Open the database, bring its schema up to date, and commit (or roll back) and close on exit.

    Args:
        path: Database file; defaults to ``paths.db_path()``.

    Yields:
        A connection with ``sqlite3.Row`` rows.
    """
    conn = _open(path or paths.db_path())
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS:
        # BEGIN IMMEDIATE takes the write lock first, so two processes opening a new database at once cannot both
        # apply the same migration; one transaction per migration leaves the schema at a known version on a crash.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn
