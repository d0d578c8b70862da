"""The workbench's SQLite database, with append-only numbered migrations (never edit one that has shipped)."""

import fcntl
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core import paths
from core.errors import WorkbenchError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # how long a statement waits for another writer before the user is told the database is busy

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
    (
        # Audit hashes became HMACs under a per-install key; older rows keep their plain SHA-256 and say so.
        "m004_audit_hash_kind",
        """
        ALTER TABLE safety_audit ADD COLUMN hash_kind TEXT NOT NULL DEFAULT 'sha256';
        """,
    ),
    (
        # Evaluation runs, listed for the Evaluate page and `workbench eval list`; the folder holds the rest.
        "m005_eval_runs",
        """
        CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            status TEXT NOT NULL,
            eval_set TEXT NOT NULL,
            systems TEXT NOT NULL,
            n_questions INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '{}'
        );
        """,
    ),
]


class DatabaseBusyError(WorkbenchError):
    """The database stayed locked by another writer for longer than the timeout."""


# Database files whose journal mode and schema this process has already settled, keyed by (path, device, inode):
# a file deleted and created anew at the same path is settled again. Guarded by _SETTLE_LOCK.
_SETTLED: set[tuple[str, int, int]] = set()
_SETTLE_LOCK = threading.Lock()


@contextmanager
def connect(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """Open the database, commit (or roll back) and close on exit.

    The journal mode and the migrations are settled once per database file and process, under a lock, so an
    ordinary connection is a plain open: a read takes no write lock. A statement that finds the database locked
    waits up to ``BUSY_TIMEOUT_S`` (SQLite's busy handler); past that the caller gets a :class:`DatabaseBusyError`.

    Args:
        path: Database file; defaults to ``paths.db_path()``.

    Yields:
        A connection with ``sqlite3.Row`` rows.

    Raises:
        DatabaseBusyError: If another writer held the database for longer than the timeout.
    """
    path = Path(path or paths.db_path())
    settle(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            yield conn
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            raise _busy_error(path) from exc
        raise
    finally:
        conn.close()


def settle(path: Path) -> None:
    """Switch a database file to WAL and apply missing migrations, once per file and process.

    Threads of one process wait on a lock; processes on an ``fcntl`` lock beside the file, so that only one of them
    changes the journal mode or the schema of a brand-new database while the others wait and then find it done.

    Args:
        path: Database file (created if missing).

    Raises:
        DatabaseBusyError: If the database stayed locked for longer than ``BUSY_TIMEOUT_S``.
    """
    path = Path(path)
    if _key(path) in _SETTLED:
        return
    with _SETTLE_LOCK:
        if _key(path) in _SETTLED:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.settle.lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                _settle_locked(path)
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise _busy_error(path) from exc
                raise
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        _SETTLED.add(_key(path))


def _settle_locked(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        # Changing the journal mode needs an exclusive lock and SQLite does not always call its busy handler for
        # it (this is where "database is locked" came from): retry here, within the same timeout.
        _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone(), path)
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            # BEGIN IMMEDIATE takes the write lock first, so a process that settles with an older copy of this
            # list (no shared lock file, e.g. another checkout) still cannot apply the same migration twice; one
            # transaction per migration leaves the schema at a known version on a crash.
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
    finally:
        conn.close()


def _retry_busy(action, path: Path):
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            logger.debug("database %s busy, retrying: %s", path, exc)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.25)


def _key(path: Path) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (str(path.resolve()), -1, -1)
    return (str(path.resolve()), st.st_dev, st.st_ino)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _busy_error(path: Path) -> DatabaseBusyError:
    return DatabaseBusyError(
        f"The workbench database ({path.name}) stayed busy for more than {BUSY_TIMEOUT_S:.0f} s: another "
        "process is writing to it. Try again in a moment; this change was not saved."
    )
