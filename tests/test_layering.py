"""Imports point one way: components -> core. core never imports streamlit; components never import model libraries."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODEL_LIBS = {
    "torch",
    "transformers",
    "peft",
    "onnxruntime",
    "llama_cpp",
    "trl",
    "bitsandbytes",
    "sentence_transformers",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("core"), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_streamlit_or_components(path):
    bad = _imports(path) & {"streamlit", "components", "app"}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", [*_files("components"), REPO / "app.py"], ids=lambda p: str(p.relative_to(REPO)))
def test_components_never_import_model_libraries(path):
    bad = _imports(path) & MODEL_LIBS
    assert not bad, f"{path} imports {bad}"


def test_no_pickle_or_shell_true():
    for path in [*_files("core"), *_files("components"), REPO / "app.py"]:
        text = path.read_text(encoding="utf-8")
        assert "import pickle" not in text and "shell=True" not in text, path


def test_layering_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom streamlit import session_state\n")
    assert {"torch", "streamlit"} <= _imports(bad)
