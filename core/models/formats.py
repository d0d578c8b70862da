"""Recognise and validate model files on disk (GGUF, Hugging Face folder, ONNX) without loading their weights."""

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from core.errors import WorkbenchError

ROLES = ("chat", "finetune_base", "embeddings", "vision")
FORMATS = ("gguf", "hf", "onnx")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(WorkbenchError):
    """A model source is missing, unreadable or not a model this workbench can use."""


@dataclass(frozen=True)
class Inspection:
    """What a model file or folder is, read from its headers."""

    format: str
    role: str  # best guess; the user may choose another
    path: str
    size_bytes: int
    detail: str  # one line for the UI: architecture, tensor count, ...


def inspect_path(path: Path) -> Inspection:
    """Identify and validate a local model file or folder.

    Args:
        path: A ``.gguf`` or ``.onnx`` file, or a Hugging Face / sentence-transformers folder.

    Returns:
        The inspection.

    Raises:
        ModelError: If the path does not exist, is not a model, or is truncated or corrupt.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"Path does not exist: {path}")
    path = path.resolve()
    if path.is_dir():
        return inspect_hf_folder(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"GGUF":
        return inspect_gguf(path)
    if path.suffix.lower() == ".onnx":
        return inspect_onnx(path)
    if path.suffix.lower() == ".gguf":
        raise ModelError(f"{path.name} has a .gguf name but is not a GGUF file (bad magic bytes {magic!r})")
    raise ModelError(
        f"{path.name} is not a model this workbench can use: expected a .gguf file, an .onnx file, "
        "or a Hugging Face model folder (config.json + safetensors)"
    )


def inspect_gguf(path: Path) -> Inspection:
    """Validate a GGUF file: header, metadata, and that every tensor's data lies inside the file.

    Args:
        path: The ``.gguf`` file.

    Returns:
        The inspection (role ``vision`` for a multimodal projector, else ``chat``).

    Raises:
        ModelError: If the file is not GGUF or is truncated.
    """
    size = path.stat().st_size
    try:
        meta, tensors, data_start = read_gguf_header(path)
    except (ValueError, KeyError, IndexError, struct.error, OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name} is not a readable GGUF file (truncated or corrupt): {exc}") from exc
    if not tensors:
        raise ModelError(f"{path.name} holds no tensors")
    end = data_start + max(offset + n_bytes for offset, n_bytes in tensors)
    if end > size:
        raise ModelError(f"{path.name} is truncated: its tensors need {end:,} bytes but the file has {size:,}")
    arch = meta.get("general.architecture", "unknown")
    name = meta.get("general.name", "")
    role = "vision" if arch == "clip" or "mmproj" in path.name.lower() else "chat"
    label = f"{name} · " if name else ""
    return Inspection("gguf", role, str(path), size, f"{label}{arch}, {len(tensors)} tensors")


# GGUF metadata value types -> struct format (strings = 8, arrays = 9 are handled apart).
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf_header(path: Path) -> tuple[dict, list[tuple[int, int]], int]:
    """Parse a GGUF header without touching tensor data (gguf.GGUFReader takes seconds on a 262k vocabulary).

    Args:
        path: The ``.gguf`` file.

    Returns:
        (scalar and string metadata, [(tensor data offset, tensor bytes)], absolute offset where tensor data starts).

    Raises:
        ValueError: If the header is malformed or runs past the end of the file.
    """
    import mmap

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def take(fmt: str) -> tuple:
            nonlocal pos
            values = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize("<" + fmt)
            return values

        def string() -> str:
            nonlocal pos
            (length,) = take("Q")
            if pos + length > len(buf):
                raise ValueError("string runs past the end of the file")
            pos += length
            return bytes(buf[pos - length : pos]).decode("utf-8")

        def value(kind: int):
            nonlocal pos
            if kind in _GGUF_SCALARS:
                return take(_GGUF_SCALARS[kind])[0]
            if kind == 8:
                return string()
            if kind == 9:
                item_kind, count = take("IQ")
                if item_kind in _GGUF_SCALARS:  # skip fixed-size arrays (token scores, types) in one step
                    pos += count * struct.calcsize(_GGUF_SCALARS[item_kind])
                    if pos > len(buf):
                        raise ValueError("array runs past the end of the file")
                else:
                    for _ in range(count):
                        value(item_kind)
                return None
            raise ValueError(f"unknown metadata type {kind}")

        magic, version = take("4sI")
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError(f"unsupported GGUF magic/version {magic!r}/{version}")
        n_tensors, n_kv = take("QQ")
        meta = {}
        for _ in range(n_kv):
            key = string()
            (kind,) = take("I")
            meta[key] = value(kind)
        tensors = []
        for _ in range(n_tensors):
            string()
            (n_dims,) = take("I")
            dims = take("Q" * n_dims)
            ggml_type, offset = take("IQ")
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
            n_elements = 1
            for dim in dims:
                n_elements *= dim
            tensors.append((offset, n_elements // block * type_size))
        alignment = int(meta.get("general.alignment") or 32)
        data_start = (pos + alignment - 1) // alignment * alignment
    return meta, tensors, data_start


def inspect_onnx(path: Path) -> Inspection:
    """Validate an ONNX model with ``onnx.checker`` (external weights are not loaded).

    Args:
        path: The ``.onnx`` file.

    Returns:
        The inspection (role ``vision``: ONNX models here are image encoders).

    Raises:
        ModelError: If the file is not a valid ONNX model.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises protobuf DecodeError, ValidationError, ...
        raise ModelError(f"{path.name} is not a valid ONNX model: {exc}") from exc
    inputs = ", ".join(i.name for i in model.graph.input)
    return Inspection(
        "onnx", "vision", str(path), path.stat().st_size, f"opset {model.opset_import[0].version}, inputs: {inputs}"
    )


def inspect_hf_folder(path: Path) -> Inspection:
    """Validate a Hugging Face (or sentence-transformers) folder: config and complete safetensors weights.

    Args:
        path: The folder.

    Returns:
        The inspection (role ``embeddings`` for sentence-transformers, ``vision`` for image models, else ``chat``).

    Raises:
        ModelError: If config or weights are missing, weights are pickle-only, or a safetensors file is truncated.
    """
    config_file = path / "config.json"
    is_st = (path / "modules.json").exists()
    if not config_file.exists():
        raise ModelError(f"{path} is not a model folder: no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{config_file} is not valid JSON: {exc}") from exc
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelError(
                f"{path} has only pickle-based weights (.bin/.pt), which this workbench refuses to load; "
                "convert them to safetensors"
            )
        raise ModelError(f"{path} has no .safetensors weights")
    for file in weights:
        check_safetensors(file)
    arches = config.get("architectures") or []
    arch = arches[0] if arches else config.get("model_type", "unknown")
    if is_st:
        role = "embeddings"
    elif any("ImageClassification" in a or "Vision" in a for a in arches):
        role = "vision"
    else:
        role = "chat"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    kind = "sentence-transformers, " if is_st else ""
    return Inspection("hf", role, str(path), size, f"{kind}{arch}, {len(weights)} safetensors file(s)")


def check_safetensors(path: Path) -> None:
    """Check a safetensors header and that the file is as long as the header says.

    Args:
        path: The ``.safetensors`` file.

    Raises:
        ModelError: If the header is unreadable or the file is truncated.
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size:
                raise ValueError("header length beyond end of file")
            header = json.loads(handle.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise ModelError(f"{path.name} is truncated: expected {8 + header_len + end:,} bytes, found {size:,}")
