"""Task configurations: frozen dataclasses whose field help feeds the CLI and the UI; validated on creation."""

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import WorkbenchError

INDEX_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")


class ConfigError(WorkbenchError):
    """A configuration value is missing, unknown or out of range."""


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


class _Config:
    """JSON round-trip shared by the configs: unknown keys are refused (a typo must not be silently ignored)."""

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        """Build from a dict, refusing keys the config does not have.

        Raises:
            ConfigError: On unknown keys or invalid values.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown {cls.__name__} keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def help(cls, name: str) -> str:
        """Return the help text of one field."""
        return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


@dataclass(frozen=True)
class IngestConfig(_Config):
    """Add files to a named RAG index."""

    index: str = _help("Name of the index to create or update (letters, digits, . _ -)")
    paths: list[str] = _help("Files or folders to ingest (folders are read recursively)", default_factory=list)
    embedding_model: str = _help("Registry name of the sentence-transformers model", default="all-minilm-l6-v2")
    chunk_tokens: int = _help("Chunk size in tokens of the embedding model's tokenizer", default=200)
    overlap_tokens: int = _help("Tokens shared by consecutive chunks of a text", default=40)
    text_field: str | None = _help(
        "JSON key or CSV column holding the text (default: 'text', else the longest text field)", default=None
    )
    max_file_mb: float = _help("Files larger than this are refused", default=50.0)
    batch_size: int = _help("Texts per embedding batch", default=64)

    def __post_init__(self) -> None:
        if not INDEX_NAME.match(self.index or ""):
            raise ConfigError(f"Invalid index name {self.index!r}: use letters, digits, '.', '_' or '-' (max 64)")
        if not 16 <= self.chunk_tokens <= 8192:
            raise ConfigError("chunk_tokens must be between 16 and 8192")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2 + 1:
            raise ConfigError("overlap_tokens must be at least 0 and at most half of chunk_tokens")
        if self.max_file_mb <= 0 or self.batch_size <= 0:
            raise ConfigError("max_file_mb and batch_size must be positive")


@dataclass(frozen=True)
class ChatConfig(_Config):
    """Settings of one conversation."""

    # Chosen by benchmarks/chat.py on the demo set: Gemma 3 270M base through a completion prompt answered more
    # accurately than SmolLM2-135M-Instruct through its chat template.
    model: str = _help("Registry name of the chat model (GGUF via llama.cpp, or a transformers folder)",
                       default="gemma3-270m-gguf")  # fmt: skip
    index: str | None = _help("RAG index to ground answers in; none gives an ungrounded plain chat", default="demo")
    top_k: int = _help("Passages retrieved and shown to the model as [S1]..[Sk]", default=5)
    temperature: float = _help("Sampling temperature; 0 is greedy (reproducible)", default=0.0)
    max_new_tokens: int = _help("Longest reply, in tokens", default=192)
    min_relevance: float = _help(
        "Least cosine similarity of the best passage for the corpus to count as covering the question", default=0.3
    )
    adapter: str | None = _help("LoRA adapter folder for a transformers model (from a fine-tuning run)", default=None)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("Choose a chat model")
        if self.index is not None and not INDEX_NAME.match(self.index):
            raise ConfigError(f"Invalid index name {self.index!r}")
        if not 1 <= self.top_k <= 20:
            raise ConfigError("top_k must be between 1 and 20")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError("temperature must be between 0 and 2")
        if not 1 <= self.max_new_tokens <= 4096:
            raise ConfigError("max_new_tokens must be between 1 and 4096")
