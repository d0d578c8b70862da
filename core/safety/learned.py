"""The learned safety layer: a small classifier over MiniLM sentence embeddings, stored as safetensors + manifest.

It predicts ``emergency``, ``personal_advice`` and ``informational`` from the embedding the chat already computes,
so screening a typical message costs one matrix product. MiniLM reads at most 256 word pieces: a longer text is
scored in overlapping windows and the worst window per label is kept.

A layer is a folder holding ``classifier.safetensors`` (float32 tensors ``w1``, ``b1`` and for an MLP ``w2``, ``b2``)
and ``manifest.json`` (labels, kind, thresholds, embedding model and fingerprint, training data hash, dev and test
figures). The shipped layer lives in ``core/safety/learned/``; ``workbench safety train`` writes new versions under
``<home>/safety/learned/`` and points ``current.json`` at the one in force.
"""

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import paths
from core.errors import WorkbenchError
from core.fileio import atomic_write_json, read_json
from core.safety.normalize import fold

log = logging.getLogger(__name__)

LABELS = ("emergency", "personal_advice", "informational")
SHIPPED_LAYER = Path(__file__).resolve().parent / "learned"
EMBEDDER = "all-minilm-l6-v2"
WINDOW_TOKENS = 254  # MiniLM's 256 less [CLS] and [SEP]
WINDOW_STRIDE = 192  # windows overlap by 62 word pieces, so a sentence cut by one edge is whole in the next
_TENSORS = ("w1", "b1", "w2", "b2")


class LearnedLayerError(WorkbenchError):
    """A learned layer that cannot be used: missing or malformed files, or made for another embedding model."""


@dataclass(frozen=True)
class Classifier:
    """Weights and manifest of one learned layer; ``probs`` maps embeddings to label probabilities."""

    tensors: dict[str, np.ndarray]
    manifest: dict
    folder: Path | None = None

    @property
    def version(self) -> str:
        """The layer's id (its training time and data hash), as verdicts name it."""
        return str(self.manifest.get("version", "unversioned"))

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-label probability at or above which the layer fires (chosen on the dev split)."""
        return {k: float(v) for k, v in self.manifest["thresholds"].items()}

    @property
    def overrides(self) -> dict[str, float]:
        """Per-label probability needed to fire where the rules suppressed a match (negation, quote, framing)."""
        return {k: float(v) for k, v in self.manifest.get("overrides", {}).items()}

    def probs(self, vectors: np.ndarray) -> np.ndarray:
        """Label probabilities, shape (N, 3), for unit-length embeddings of shape (N, dim)."""
        # The products run in torch, on the thread pool the embedding model already uses: numpy's BLAS would start
        # its own threads, and on two cores the two pools contend (a 0.1 ms product then costs 10 ms or more).
        import torch

        t = {k: torch.from_numpy(v) for k, v in self.tensors.items()}
        with torch.inference_mode():
            z = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)) @ t["w1"] + t["b1"]  # (N, H|3)
            if "w2" in t:
                z = torch.relu(z) @ t["w2"] + t["b2"]  # (N, 3)
            return torch.softmax(z, dim=1).numpy()


def save_layer(folder: Path, tensors: dict[str, np.ndarray], manifest: dict) -> Path:
    """Write a layer folder (safetensors first, the manifest last: a folder without a manifest is not a layer)."""
    from safetensors.numpy import save

    from core.fileio import atomic_write_bytes

    folder = Path(folder)
    clean = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    atomic_write_bytes(folder / "classifier.safetensors", save(clean, metadata={"format": "np"}))
    atomic_write_json(folder / "manifest.json", manifest)
    return folder


def load_layer(folder: Path) -> Classifier:
    """Read and check a layer folder.

    Args:
        folder: A folder with ``classifier.safetensors`` and ``manifest.json``.

    Returns:
        The classifier.

    Raises:
        LearnedLayerError: A file is missing or the shapes and manifest do not fit together.
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    try:
        manifest = read_json(folder / "manifest.json")
        tensors = load_file(str(folder / "classifier.safetensors"))
    except (OSError, ValueError) as exc:
        raise LearnedLayerError(f"Learned safety layer {folder} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or tuple(manifest.get("labels", ())) != LABELS:
        raise LearnedLayerError(f"{folder}/manifest.json: labels must be {list(LABELS)}")
    thresholds = manifest.get("thresholds")
    if not isinstance(thresholds, dict) or set(thresholds) != {"emergency", "personal_advice"}:
        raise LearnedLayerError(f"{folder}/manifest.json: thresholds for emergency and personal_advice are required")
    if set(tensors) - set(_TENSORS) or not {"w1", "b1"} <= set(tensors) or ("w2" in tensors) != ("b2" in tensors):
        raise LearnedLayerError(f"{folder}: unexpected tensors {sorted(tensors)}")
    dim = manifest.get("embedding", {}).get("dim")
    last = tensors.get("w2", tensors["w1"])
    if tensors["w1"].shape[0] != dim or last.shape[1] != len(LABELS):
        raise LearnedLayerError(f"{folder}: weights of shape {tensors['w1'].shape} do not fit the manifest")
    return Classifier(tensors, manifest, folder)


def user_layers_dir() -> Path:
    """Where trained layers are written: ``<home>/safety/learned/``."""
    return paths.home() / "safety" / "learned"


def current_pointer() -> Path:
    """``current.json`` names the version folder in force; absent means the shipped layer."""
    return user_layers_dir() / "current.json"


@dataclass(frozen=True)
class LayerScores:
    """What the learned layer said about one text."""

    probs: dict[str, float]
    thresholds: dict[str, float]
    overrides: dict[str, float]
    version: str
    windows: int = 1
    computed: bool = True  # False when the caller's embedding was used
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)  # window 0, for retrieval reuse
    embedded_text: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        """Return the scores as verdicts carry them."""
        return {"scores": {k: round(v, 4) for k, v in self.probs.items()}, "thresholds": self.thresholds,
                "overrides": self.overrides, "version": self.version, "windows": self.windows,
                "computed": self.computed}  # fmt: skip


def windows(text: str, tokenizer) -> list[str]:
    """Split a text into overlapping windows of at most 254 word pieces (one window when it fits).

    Args:
        text: The text to score.
        tokenizer: The embedding model's fast tokenizer (with offset mapping).

    Returns:
        Window texts, in order.
    """
    if len(text) <= WINDOW_TOKENS:  # every word piece covers at least one character
        return [text]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= WINDOW_TOKENS:
        return [text]
    out = []
    for start in range(0, len(offsets), WINDOW_STRIDE):
        piece = offsets[start : start + WINDOW_TOKENS]
        out.append(text[piece[0][0] : piece[-1][1]])
        if start + WINDOW_TOKENS >= len(offsets):
            break
    return out


def embed_windows(texts: list[str], embedder) -> tuple[np.ndarray, list[int]]:
    """Fold each text, split it into windows and embed them all in batches.

    Args:
        texts: The texts.
        embedder: The embedding model.

    Returns:
        The (W, dim) window vectors, in text order, and each text's window count.
    """
    parts = [windows(fold(t).text, embedder.model.tokenizer) for t in texts]
    return embedder.encode([p for ps in parts for p in ps]), [len(ps) for ps in parts]


class LearnedLayer:
    """A classifier with the embedding model that reads texts for it."""

    def __init__(self, classifier: Classifier, embedder=None) -> None:
        self.classifier = classifier
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def embedder(self):
        """The embedding model named in the manifest (loaded on first use, once per layer)."""
        with self._lock:
            if self._embedder is None:
                want = self.classifier.manifest["embedding"]
                embedder = shared_embedder(want["model"])
                if embedder.fingerprint != want["fingerprint"]:
                    raise LearnedLayerError(
                        f"The learned safety layer was trained on {want['model']} with fingerprint "
                        f"{want['fingerprint']}; the installed model's is {embedder.fingerprint}. Retrain it "
                        "(`workbench safety train`)."
                    )
                self._embedder = embedder
            return self._embedder

    def accepts(self, embedder) -> bool:
        """Whether vectors from ``embedder`` live in this layer's space (same model name and weights)."""
        want = self.classifier.manifest["embedding"]
        return embedder is not None and embedder.name == want["model"] and embedder.fingerprint == want["fingerprint"]

    def score(self, text: str, embedding: np.ndarray | None = None, embedder=None) -> LayerScores:
        """Score a text, in windows when it is longer than the model reads.

        Args:
            text: The (redacted) text; it is folded like the rules' input.
            embedding: The caller's unit-length embedding of ``text``, used for the first window.
            embedder: The caller's embedding model, used instead of the layer's own when ``accepts`` it.

        Returns:
            The probabilities (worst window per label), thresholds and how the text was read.
        """
        model = embedder if self.accepts(embedder) else self.embedder
        folded = fold(text).text
        parts = windows(folded, model.model.tokenizer)
        given = embedding is not None
        if given:
            rest = model.encode(parts[1:]) if len(parts) > 1 else np.zeros((0, len(embedding)), dtype=np.float32)
            vectors = np.vstack([np.asarray(embedding, dtype=np.float32)[None, :], rest])
        else:
            vectors = model.encode(parts)
        probs = self.classifier.probs(vectors).max(axis=0)  # (3,): the worst window per label
        c = self.classifier
        return LayerScores(
            probs=dict(zip(LABELS, (float(p) for p in probs), strict=True)),
            thresholds=c.thresholds,
            overrides=c.overrides,
            version=c.version,
            windows=len(parts),
            computed=not given,
            embedding=vectors[0],
            embedded_text=parts[0],
        )

    def vectors_many(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Embed many texts' windows in batches: the (W, dim) vectors and each text's window count."""
        return embed_windows(texts, self.embedder)

    def scores_from(self, vectors: np.ndarray, counts: list[int]) -> list[LayerScores]:
        """Turn window vectors (as ``vectors_many`` returns them) into one LayerScores per text (worst window)."""
        probs = self.classifier.probs(vectors) if len(vectors) else np.zeros((0, len(LABELS)))
        out, at = [], 0
        c = self.classifier
        for n in counts:
            worst = probs[at : at + n].max(axis=0)
            out.append(LayerScores(dict(zip(LABELS, (float(p) for p in worst), strict=True)), c.thresholds,
                                   c.overrides, c.version, windows=n))  # fmt: skip
            at += n
        return out

    def score_many(self, texts: list[str]) -> list[LayerScores]:
        """Score many texts as ``score`` does one, embedding all windows in batches (evaluation, training)."""
        return self.scores_from(*self.vectors_many(texts))


_EMBEDDERS: dict[str, object] = {}
_EMBEDDERS_LOCK = threading.Lock()


def shared_embedder(name: str):
    """One embedding model per name and process, shared by every layer (the weights are read-only)."""
    from core.rag.embed import Embedder

    with _EMBEDDERS_LOCK:
        if name not in _EMBEDDERS:
            _EMBEDDERS[name] = Embedder(name)
        return _EMBEDDERS[name]


def split_figures(manifest: dict, split: str, sha256: str) -> dict | None:
    """The figures (rules, learned, combined) a layer's manifest records for this version of a split, or None.

    A layer is scored on the dev and test splits it was trained beside (``figures``); when the shipped splits are
    rewritten later (a used-up test split retired, a new one written), the layer may be scored on the new ones
    too (``evaluations``). Figures for another version of the split describe other prompts and are not returned.

    Args:
        manifest: The layer's manifest.
        split: ``dev`` or ``test``.
        sha256: ``examples.data_hash`` of the split as it is now.

    Returns:
        The figures, or None when the manifest has none for this version.
    """
    if manifest.get("data", {}).get(f"{split}_sha256") == sha256:
        return manifest.get("figures", {}).get(split)
    for entry in manifest.get("evaluations", []):
        if entry.get(f"{split}_sha256") == sha256:
            return entry.get(split)
    return None


def layer_in_force() -> tuple[Classifier, tuple[str, ...]]:
    """Return the classifier in force and any problems met choosing it.

    The version named by ``current.json`` wins; when it is missing or broken the shipped layer is used and the
    problem is reported (the same fallback as rule files).

    Returns:
        The classifier and a tuple of error messages (empty when all is well).

    Raises:
        LearnedLayerError: Neither the chosen version nor the shipped layer can be read.
    """
    pointer = current_pointer()
    errors: tuple[str, ...] = ()
    if pointer.exists():
        try:
            version = read_json(pointer)["version"]
            return load_layer(user_layers_dir() / str(version)), errors
        except (LearnedLayerError, ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("ignoring the trained safety layer: %s", exc)
            errors = (f"The trained safety layer cannot be used ({exc}); the shipped layer is in force.",)
    return load_layer(SHIPPED_LAYER), errors


class LayerStore:
    """Hands out the learned layer in force, reloading when ``current.json`` changes (keeps the embedder)."""

    def __init__(self) -> None:
        self._stamp: object = ()
        self._layer: LearnedLayer | None = None
        self.errors: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def current(self) -> LearnedLayer:
        """Return the layer in force.

        Raises:
            LearnedLayerError: No layer can be read at all.
        """
        pointer = current_pointer()
        stamp = pointer.stat().st_mtime_ns if pointer.exists() else None
        with self._lock:
            if self._layer is None or stamp != self._stamp:
                classifier, self.errors = layer_in_force()
                old = self._layer._embedder if self._layer is not None else None
                same = old is not None and old.name == classifier.manifest["embedding"]["model"]
                embedder = old if same else None
                self._layer = LearnedLayer(classifier, embedder)
                self._stamp = stamp
            return self._layer
