"""ModelEntry: one registered model as the Models page and ``workbench models list --json`` show it."""

from dataclasses import asdict, dataclass

STATUS_HELP = {
    "ready": "Ready to use",
    "missing": "The file or folder is gone",
    "invalid": "Present but not a usable model",
    "offline": "A hub id that is not in the local cache; nothing is downloaded at run time",
    "not_prepared": "Embedded model not prepared yet: run `make run`, `workbench models prepare` or the button",
}


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    role: str  # chat | finetune_base | embeddings | vision
    format: str  # gguf | hf | onnx | hub (a hub id not resolved offline)
    source: str  # what the user gave: a path or a hub id
    path: str | None  # resolved local path, None when not available offline
    size_bytes: int | None
    status: str  # ready | missing | invalid | offline | not_prepared
    detail: str
    embedded: bool
    added_at: str | None = None
    checked_at: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)

    def replace(self, **changes: object) -> "ModelEntry":
        """Return a copy with some fields changed."""
        return ModelEntry(**{**self.to_dict(), **changes})
