"""The SQLite layer under load: many threads and processes opening a brand-new database and writing at once."""

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from core import db, paths
from core.chat import store

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_THREADS, N_PROCESSES, N_MESSAGES, N_ROUNDS = 8, 3, 4, 12

# A writer process: for each round, waits for that round's go file, then writes a conversation into the round's
# brand-new home (the database does not exist until the first of them opens it). Failures go to stderr.
WORKER = """
import os, sys, time, traceback
from core.chat import store
base, who, n_messages, n_rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
failed = 0
for r in range(n_rounds):
    go = os.path.join(base, f"go-{r}")
    deadline = time.monotonic() + 120  # the test died without saying go: never poll forever
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(3)
        time.sleep(0.0005)
    os.environ["WORKBENCH_HOME"] = os.path.join(base, f"home-{r}")
    try:
        conversation = store.create_conversation(settings={"who": who})
        for n in range(n_messages):
            store.add_message(conversation.id, "user" if n % 2 == 0 else "assistant", f"{who} message {n}")
            store.list_messages(conversation.id)
    except Exception:
        failed += 1
        traceback.print_exc()
    open(os.path.join(base, f"done-{r}-{who}"), "w").close()
sys.exit(1 if failed else 0)
"""


def _write_conversation(who: str) -> None:
    conversation = store.create_conversation(settings={"who": who})
    for n in range(N_MESSAGES):
        store.add_message(conversation.id, "user" if n % 2 == 0 else "assistant", f"{who} message {n}")
        store.list_messages(conversation.id)


def test_threads_and_processes_on_brand_new_databases_all_succeed(tmp_path, monkeypatch, request):
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), f"proc{i}", str(N_MESSAGES), str(N_ROUNDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(N_PROCESSES)
    ]

    def kill_leftovers() -> None:  # a failing round must not leave writers polling for go files
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    request.addfinalizer(kill_leftovers)
    time.sleep(1.5)  # the processes import and start polling for the first go file
    errors = []
    for r in range(N_ROUNDS):
        home = tmp_path / f"home-{r}"
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        barrier = threading.Barrier(N_THREADS + 1)

        def run(i: int, r: int, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                _write_conversation(f"thread{i}")
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(f"round {r}: {exc!r}")

        threads = [threading.Thread(target=run, args=(i, r, barrier)) for i in range(N_THREADS)]
        for thread in threads:
            thread.start()
        assert not paths.db_path().exists()  # nobody opened it yet: all of them race to create it
        (tmp_path / f"go-{r}").touch()
        barrier.wait()
        for thread in threads:
            thread.join(timeout=120)
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"done-{r}-proc{i}").exists() for i in range(N_PROCESSES)):
            # A writer exits after its last round: only one that ended before finishing this round died.
            died = [
                i
                for i, p in enumerate(procs)
                if p.poll() is not None and not (tmp_path / f"done-{r}-proc{i}").exists()
            ]
            assert time.monotonic() < deadline and not died, f"writer processes {died} died"
            time.sleep(0.01)
        conversations = store.list_conversations(limit=1000)
        assert len(conversations) == N_THREADS + N_PROCESSES or errors
        for conversation in conversations:
            assert len(store.list_messages(conversation.id)) == N_MESSAGES
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert errors == []
    assert [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True)] == [(0, "")] * N_PROCESSES
    with db.connect() as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert applied == [name for name, _ in db.MIGRATIONS]


def test_schema_is_settled_once_per_file_and_process(monkeypatch):
    calls = []
    original = db._settle_locked
    monkeypatch.setattr(db, "_settle_locked", lambda path: (calls.append(path), original(path)))
    threads = [threading.Thread(target=store.list_conversations) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(5):
        store.list_conversations()
    assert len(calls) == 1
    # The same path holding a new file (deleted, recreated) is settled again.
    for suffix in ("", "-wal", "-shm"):
        paths.db_path().with_name(paths.db_path().name + suffix).unlink(missing_ok=True)
    assert store.list_conversations() == []
    assert len(calls) == 2


def test_reads_take_no_write_lock(monkeypatch):
    conversation = store.create_conversation()
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 8.0, raising=False)  # a read waiting for the lock would take 8 s
    writer = sqlite3.connect(paths.db_path(), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another tab or process in the middle of a write
    try:
        started = time.monotonic()
        assert [c.id for c in store.list_conversations()] == [conversation.id]
        assert store.list_messages(conversation.id) == []
        assert time.monotonic() - started < 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_database_busy_past_the_timeout_is_a_clear_error_and_loses_nothing(monkeypatch):
    conversation = store.create_conversation(title="kept")
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.3)
    writer = sqlite3.connect(paths.db_path(), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(db.DatabaseBusyError, match="busy"):
            store.rename_conversation(conversation.id, "changed")
        with pytest.raises(db.DatabaseBusyError):
            store.add_message(conversation.id, "user", "hello")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert store.get_conversation(conversation.id).title == "kept"
    assert store.list_messages(conversation.id) == []
