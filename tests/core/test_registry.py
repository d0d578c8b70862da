"""Model registry: embedded models ready; user models added, checked, removed; bad input refused and nothing stored."""

import json
import shutil
from pathlib import Path

import pytest

from core import db
from core.models import embedded, registry
from core.models.formats import ModelError

SMOLLM = lambda: embedded.model_path("smollm2-135m-instruct")  # noqa: E731
MINILM = lambda: embedded.model_path("all-minilm-l6-v2")  # noqa: E731


def names():
    return [e.name for e in registry.list_models()]


def test_embedded_models_are_listed_ready():
    entries = {e.name: e for e in registry.list_models()}
    assert {"smollm2-135m-instruct", "gemma3-270m-gguf", "gemma3-270m", "all-minilm-l6-v2"} <= set(entries)
    for entry in entries.values():
        assert entry.embedded and entry.status == "ready", entry
    assert entries["gemma3-270m"].role == "finetune_base" and entries["gemma3-270m"].format == "hf"
    assert entries["all-minilm-l6-v2"].role == "embeddings"
    assert [e.name for e in registry.list_models(role="embeddings")] == ["all-minilm-l6-v2"]


def test_add_a_local_gguf_check_and_remove():
    entry = registry.add_model(str(SMOLLM()), name="my-smol")
    assert (entry.status, entry.format, entry.role) == ("ready", "gguf", "chat")
    assert "llama" in entry.detail and entry.size_bytes > 50_000_000
    assert registry.check_model("my-smol").status == "ready"
    registry.remove_model("my-smol")
    assert "my-smol" not in names()


def test_add_a_sentence_transformers_folder_detects_embeddings():
    entry = registry.add_model(str(MINILM()), name="minilm-copy")
    assert (entry.format, entry.role, entry.status) == ("hf", "embeddings", "ready")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope.gguf", "does not exist"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "not a model"),
        (lambda d: (d / "fake.gguf").write_bytes(b"not gguf at all") and d / "fake.gguf", "not a GGUF file"),
        (lambda d: (d / "empty.onnx").write_bytes(b"\x00garbage") and d / "empty.onnx", "not a valid ONNX"),
        (lambda d: d, "no config.json"),
    ],
    ids=["missing-path", "text-file", "fake-gguf", "bad-onnx", "empty-folder"],
)
def test_bad_sources_are_refused_and_registry_is_unchanged(tmp_path, make, message):
    before = names()
    with pytest.raises(ModelError, match=message):
        registry.add_model(str(make(tmp_path)), name="bad")
    assert names() == before


def test_truncated_gguf_is_refused(tmp_path):
    truncated = tmp_path / "truncated.gguf"
    with open(SMOLLM(), "rb") as src:
        truncated.write_bytes(src.read(30_000_000))
    before = names()
    with pytest.raises(ModelError, match="truncated"):
        registry.add_model(str(truncated))
    assert names() == before


def test_truncated_safetensors_folder_is_refused(tmp_path):
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM(), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1_000_000])
    with pytest.raises(ModelError, match="truncated"):
        registry.add_model(str(folder))


def test_pickle_only_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="pickle"):
        registry.add_model(str(tmp_path))


def test_valid_onnx_is_a_vision_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["features"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "encoder.onnx"
    onnx.save(helper.make_model(graph), path)
    entry = registry.add_model(str(path))
    assert (entry.format, entry.role, entry.status, entry.name) == ("onnx", "vision", "ready", "encoder.onnx")


def test_duplicate_names_bad_roles_and_bad_names_are_refused():
    registry.add_model(str(SMOLLM()), name="dup")
    with pytest.raises(ModelError, match="already registered"):
        registry.add_model(str(SMOLLM()), name="dup")
    with pytest.raises(ModelError, match="already registered"):
        registry.add_model(str(SMOLLM()), name="gemma3-270m")
    with pytest.raises(ModelError, match="Unknown role"):
        registry.add_model(str(SMOLLM()), name="x", role="oracle")
    with pytest.raises(ModelError, match="Invalid model name"):
        registry.add_model(str(SMOLLM()), name="../../evil")
    with pytest.raises(ModelError, match="embedded"):
        registry.remove_model("gemma3-270m")
    assert names().count("dup") == 1


def test_hub_id_not_cached_is_registered_offline_with_a_plain_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    entry = registry.add_model("google/medgemma-4b-it")
    assert entry.status == "offline" and entry.path is None
    assert "not in the local Hugging Face cache" in entry.detail and "never downloads" in entry.detail
    assert registry.check_model("medgemma-4b-it").status == "offline"
    assert {e.name: e.status for e in registry.list_models()}["gemma3-270m"] == "ready"  # nothing else broke


def test_hub_id_in_the_local_cache_resolves(tmp_path, monkeypatch):
    # Lay out a real Hugging Face cache entry (refs/main -> snapshot) holding a copy of MiniLM.
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-embedder"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(MINILM(), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    entry = registry.add_model("acme/tiny-embedder")
    assert (entry.status, entry.role, entry.path) == ("ready", "embeddings", str(snapshot))


def test_a_model_whose_file_vanished_shows_missing(tmp_path):
    copy = tmp_path / "smol.gguf"
    shutil.copy(SMOLLM(), copy)
    registry.add_model(str(copy), name="vanishing")
    copy.unlink()
    assert {e.name: e.status for e in registry.list_models()}["vanishing"] == "missing"
    checked = registry.check_model("vanishing")
    assert checked.status == "missing" and "no longer exists" in checked.detail


def test_migrations_are_recorded_once(workbench_home):
    with db.connect() as conn:
        first = conn.execute("SELECT name FROM _migrations").fetchall()
    with db.connect() as conn:
        second = conn.execute("SELECT name FROM _migrations").fetchall()
    assert [r["name"] for r in first] == [r["name"] for r in second] == [name for name, _ in db.MIGRATIONS]
    assert Path(workbench_home / "workbench.db").exists()
