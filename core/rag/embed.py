"""Sentence embeddings from a local sentence-transformers folder (normalised, so inner product = cosine)."""

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from core.errors import WorkbenchError
from core.models import registry

logger = logging.getLogger(__name__)


class EmbeddingError(WorkbenchError):
    """The embedding model is missing, not ready, or not a sentence-transformers model."""


class Embedder:
    """A loaded sentence-transformers model, identified by registry name and a fingerprint of its weights."""

    def __init__(self, name: str = "all-minilm-l6-v2"):
        """Load the registry model ``name`` (role ``embeddings``) on the CPU, offline.

        Raises:
            EmbeddingError: If it is not registered, not ready, or not an embedding model.
        """
        try:
            entry = registry.get_model(name)
        except WorkbenchError as exc:
            raise EmbeddingError(str(exc)) from exc
        if entry.role != "embeddings" or entry.format != "hf":
            raise EmbeddingError(f"{name} is a {entry.role} model ({entry.format}), not a sentence-transformers model")
        if entry.status != "ready" or entry.path is None:
            raise EmbeddingError(f"Embedding model {name} is not ready ({entry.status}): {entry.detail}")
        self.name = name
        self.path = Path(entry.path)
        self.fingerprint = fingerprint(self.path)
        self._model = None  # loaded on first use: an ingest of unchanged files never needs torch

    @property
    def model(self):
        """The sentence-transformers model (loaded on first access)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter CLI output and job logs
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        return self._model

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens, without the [CLS] and [SEP] the model adds."""
        return int(self.model.max_seq_length) - 2

    @property
    def tokenizer_file(self) -> Path:
        """The ``tokenizer.json`` the chunker counts tokens with."""
        return self.path / "tokenizer.json"

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Passages or queries.
            batch_size: Texts per forward pass.

        Returns:
            float32 array of shape (len(texts), dim), rows of unit length.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)  # (N, dim)

    def encode_batches(self, texts: list[str], batch_size: int, report=None, span=(0.0, 1.0)) -> np.ndarray:
        """Embed many texts batch by batch, reporting progress.

        Args:
            texts: Passages.
            batch_size: Texts per batch.
            report: ``report(fraction, message)`` after each batch.
            span: The (start, end) of the overall progress bar this work covers.

        Returns:
            float32 array of shape (len(texts), dim).
        """
        # Batches of similar length carry less padding: sort once over all texts (as a single encode() call
        # does), embed in that order for progress reports, then put the rows back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self.encode([texts[i] for i in rows], batch_size)
            done = min(len(texts), start + batch_size)
            if report:
                report(span[0] + (span[1] - span[0]) * done / len(texts), f"Embedded {done}/{len(texts)} chunks")
        return out


def fingerprint(folder: Path) -> str:
    """Identify a model by its weights: sha256 over the safetensors files (names, sizes and a content hash).

    Args:
        folder: The model folder.

    Returns:
        A 16-hex-digit fingerprint.
    """
    digest = hashlib.sha256()
    for file in sorted(Path(folder).glob("*.safetensors")):
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            while block := handle.read(4 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]
