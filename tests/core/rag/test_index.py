"""Index storage: generations kept for readers, damaged files reported, names checked before any file is made."""

import json
import os

import pytest

from core import paths
from core.config import IngestConfig
from core.fileio import JsonlError, read_jsonl
from core.rag import index as store
from core.rag.ingest import ingest


def _commit(name: str = "t", n: int = 1) -> store.IndexState:
    """Commit ``n`` generations of a tiny index through the real storage API (no embedding model needed)."""
    import numpy as np

    if store.exists(name):
        state = store.load(name)
    else:
        embedding, chunking = {"model": "m", "fingerprint": "f", "dim": 4}, {"chunk_tokens": 200, "overlap_tokens": 40}
        state = store.new_state(name, embedding, chunking)
    for _ in range(n):
        i = state.manifest["next_id"]
        text = f"text {i} about the heart"
        chunk = {"id": f"c{i}", "source": f"doc{i}.txt", "page": None, "record": None, "start": 0, "end": len(text),
                 "text": text, "metadata": {}}  # fmt: skip
        vector = np.eye(4, dtype=np.float32)[[i % 4]]  # (1, 4)
        store.add(state, [chunk], vector, [{"source": chunk["source"], "text": text}])
        state.manifest["files"][chunk["source"]] = {"sha256": "", "chunks": 1}
        state = store.commit(state)
    return state


def _generations(name: str = "t") -> list[str]:
    return sorted(p.name for p in store.index_dir(name).glob("gen-*"))


def test_the_previous_generation_stays_until_the_next_commit():
    _commit()
    seen_by_reader = store.read_manifest("t")  # a reader read the manifest a moment ago...
    _commit()  # ...then a writer committed generation 2
    assert _generations() == ["gen-000001", "gen-000002"]
    old = store.load("t", seen_by_reader)  # the reader can still open what its manifest names
    assert old.generation == 1 and len(old.chunks) == 1 and old.vectors.ntotal == 1
    assert store.load("t").generation == 2 and len(store.load("t").chunks) == 2
    _commit()
    assert _generations() == ["gen-000002", "gen-000003"]  # older than the previous one: removed
    with pytest.raises(store.RagIndexError, match="damaged"):
        store.load("t", seen_by_reader)


def test_every_file_of_a_generation_is_flushed_before_the_manifest_swap(monkeypatch):
    from core.rag import index as index_module

    events = []
    real_fsync, real_write = index_module.fsync_path, index_module.atomic_write_json
    monkeypatch.setattr(index_module, "fsync_path", lambda p, tree=False: (events.append(("fsync", p.name, tree)),
                                                                           real_fsync(p, tree))[1])  # fmt: skip
    monkeypatch.setattr(index_module, "atomic_write_json", lambda p, obj: (events.append(("swap", p.name, None)),
                                                                           real_write(p, obj))[1])  # fmt: skip
    _commit()
    assert events == [("fsync", "gen-000001", True), ("fsync", "t", False), ("swap", "manifest.json", None),
                      ("fsync", "t", False)]  # fmt: skip


def test_fsync_path_flushes_files_and_folders(tmp_path, monkeypatch):
    from core.fileio import fsync_path

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(b"a")
    (tmp_path / "b.bin").write_bytes(b"b")
    flushed, real = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))[1])
    fsync_path(tmp_path, tree=True)
    names = [os.path.relpath(p, tmp_path) for p in flushed]
    assert sorted(names[:3]) == sorted(["sub/a.bin", "b.bin", "sub"]) and names.index("sub/a.bin") < names.index("sub")
    assert names[-1] == "."  # the folder itself last


def test_a_damaged_line_inside_an_index_file_is_reported(corpus, embedder):
    ingest(IngestConfig(index="t", paths=[str(corpus)]), embedder=embedder)
    chunks_file = store.index_dir("t") / f"gen-{store.read_manifest('t')['generation']:06d}" / "chunks.jsonl"
    lines = chunks_file.read_text().splitlines(keepends=True)
    assert len(lines) >= 3
    chunks_file.write_text("".join([lines[0], '{"id": "half-writ\n', *lines[1:]]))
    with pytest.raises(store.RagIndexError, match=r"damaged: .*chunks.jsonl is damaged: line 2 is not valid JSON"):
        store.load("t")


def test_read_jsonl_skips_only_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "b": "tor')  # a writer killed mid-line
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": 2}')  # complete, just no final newline
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_bytes('{"a": 1}\n{"a": "é'.encode()[:-1])  # torn inside a UTF-8 character
    assert read_jsonl(path) == [{"a": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize(
    "content, readable",
    [
        (b'{"a": 1}\nnot json\n{"a": 2}\n', [{"a": 1}, {"a": 2}]),
        (b'{"a": 1}\n{"a": \n', [{"a": 1}]),  # complete (newline-terminated) but invalid: not torn
        (b'{"a": "\xff"}\n{}\n', [{}]),  # not UTF-8
    ],
)
def test_read_jsonl_refuses_a_damaged_line_before_the_end(tmp_path, content, readable):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(JsonlError, match=r"data.jsonl is damaged: line \d is not valid JSON"):
        read_jsonl(path)
    assert isinstance(JsonlError("x"), ValueError)  # callers that caught ValueError still do
    assert read_jsonl(path, skip_bad_lines=True) == readable  # for logs that are only shown (with a warning)


@pytest.mark.parametrize("name", ["/../../x", "../x", "demo\n", "a/b", ""])
def test_an_invalid_index_name_is_refused_before_any_file_is_made(name, tmp_path):
    home = paths.home()
    before = sorted(p for p in tmp_path.rglob("*") if home not in p.parents and p != home)
    with pytest.raises(store.RagIndexError, match="Invalid index name"):
        with store.lock(name):
            pass
    after = sorted(p for p in tmp_path.rglob("*") if home not in p.parents and p != home)
    assert after == before  # nothing outside the home
    assert [p.name for p in paths.indices_dir().iterdir()] == []  # and nothing inside it


def test_the_cli_refuses_an_escaping_index_name_with_a_clear_error(tmp_path, capsys):
    from core.cli import main

    home = paths.home()
    assert main(["index", "delete-doc", "/../../x", "y"]) == 2
    assert "error: Invalid index name '/../../x'" in capsys.readouterr().err
    assert not (home.parent / "x.lock").exists() and not (home / "x.lock").exists()
    assert main(["index", "delete-doc", "demo\n", "y", "--json"]) == 2
    assert "Invalid index name" in json.loads(capsys.readouterr().out)["error"]
    assert list(paths.indices_dir().iterdir()) == []


def test_a_damaged_manifest_is_a_clear_error_and_hides_no_other_index(tmp_path, embedder):
    from core.config import IngestConfig
    from core.rag import manage
    from core.rag.ingest import ingest

    (tmp_path / "a.txt").write_text("Statins lower LDL cholesterol and reduce cardiovascular events.")
    for name in ("good", "bad"):
        ingest(IngestConfig(index=name, paths=[str(tmp_path)]), embedder=embedder)
    (store.index_dir("bad") / "manifest.json").write_text('{"generation": 1, "files": {')
    with pytest.raises(store.RagIndexError, match="manifest.json is damaged"):
        store.read_manifest("bad")
    errors = []
    assert [i.name for i in manage.list_indices(errors=errors)] == ["good"]
    assert len(errors) == 1 and "bad" in errors[0]
    assert manage.search("good", "statins", embedder=embedder)
