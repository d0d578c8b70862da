"""Task configurations: frozen dataclasses whose field help feeds the CLI and the UI; validated on creation."""

import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError

# fullmatch, never match: "$" also matches before a trailing newline, and "demo\n" is no folder name.
INDEX_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,63}")


class ConfigError(WorkbenchError):
    """A configuration value is missing, unknown or out of range."""


def read_config_file(path: str | Path, what: str) -> dict:
    """The mapping in a YAML or JSON config file (JSON is YAML too).

    Args:
        path: The file.
        what: The config's name, for messages ("TrainConfig").

    Raises:
        ConfigError: If the file is missing, unparsable or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name} is not valid YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a mapping of {what} fields")
    return data


def absolute_near(value: Any, config_file: str | Path) -> Any:
    """A relative path that exists next to the config file or in the current folder, made absolute.

    Jobs run in the repository folder, so such paths are fixed when the file is read; others stay as they are
    (shipped data such as ``data/finetune/...`` is found relative to the repository).
    """
    if isinstance(value, str) and value and not Path(value).is_absolute():
        for folder in (Path(config_file).parent, Path.cwd()):
            if (folder / value).exists():
                return str((folder / value).resolve())
    return value


def _help(
    text: str,
    *,
    low: float | None = None,
    high: float | None = None,
    step: float | None = None,
    choices: tuple | None = None,
    **kwargs: Any,
) -> Any:
    """A config field whose help text, range and choices are declared once, here.

    The CLI (``cliutil.config_option``) and the page widgets read default, range, step and help from this metadata,
    and :meth:`_Config.check_fields` enforces the range and choices, so the three can never disagree.
    """
    metadata = {"help": text, "low": low, "high": high, "step": step, "choices": choices}
    return field(metadata={k: v for k, v in metadata.items() if v is not None}, **kwargs)


@dataclass(frozen=True)
class FieldSpec:
    """What a form or a CLI flag needs to know about one config field."""

    name: str
    help: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple | None = None


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
        return cls.spec(name).help

    @classmethod
    def spec(cls, name: str) -> FieldSpec:
        """Return one field's help, default, range, step and choices (for CLI flags and page widgets).

        Raises:
            KeyError: If the config has no such field.
        """
        for f in fields(cls):
            if f.name == name:
                default = f.default if f.default is not MISSING else None
                if f.default_factory is not MISSING:
                    default = f.default_factory()
                meta = f.metadata
                return FieldSpec(name, meta.get("help", ""), default, meta.get("low"), meta.get("high"),
                                 meta.get("step"), meta.get("choices"))  # fmt: skip
        raise KeyError(f"{cls.__name__} has no field {name!r}")

    def check_fields(self) -> None:
        """Refuse values outside a field's declared range or choices (called first by each ``__post_init__``).

        Raises:
            ConfigError: Naming the field, the allowed range or choices, and the value given.
        """
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None:
                continue
            choices = meta.get("choices")
            if choices is not None and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(map(str, choices))} (got {value!r})")
            low, high = meta.get("low"), meta.get("high")
            if low is None and high is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name} must be a number (got {value!r})")
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else (
                    f"at least {low:g}" if low is not None else f"at most {high:g}")  # fmt: skip
                raise ConfigError(f"{f.name} must be {bounds} (got {value:g})")


@dataclass(frozen=True)
class IngestConfig(_Config):
    """Add files to a named RAG index."""

    index: str = _help("Name of the index to create or update (letters, digits, . _ -)")
    paths: list[str] = _help("Files or folders to ingest (folders are read recursively)", default_factory=list)
    embedding_model: str = _help("Registry name of the sentence-transformers model", default="all-minilm-l6-v2")
    chunk_tokens: int = _help("Chunk size in tokens of the embedding model's tokenizer (at most what the model "
                              "reads: 254 for all-minilm-l6-v2)", default=200, low=16, high=8192)  # fmt: skip
    overlap_tokens: int = _help("Tokens shared by consecutive chunks of a text (at most half of chunk_tokens)",
                                default=40, low=0, high=4096)  # fmt: skip
    text_field: str | None = _help(
        "JSON key or CSV column holding the text (default: 'text', else the longest text field)", default=None
    )
    max_file_mb: float = _help("Files larger than this are refused before they are read", default=50.0, low=0.01,
                               high=65536.0, step=1.0)  # fmt: skip
    max_pdf_pages: int = _help("PDFs with more pages than this are refused", default=2000, low=1, high=1_000_000)
    max_records: int = _help("JSON, JSONL and CSV files with more records (rows) than this are refused",
                             default=200_000, low=1, high=100_000_000)  # fmt: skip
    max_text_mb: float = _help("Files whose extracted text exceeds this many MB (millions of characters) are "
                               "refused", default=100.0, low=0.01, high=65536.0, step=1.0)  # fmt: skip
    batch_size: int = _help("Texts per embedding batch", default=64, low=1, high=4096)

    def __post_init__(self) -> None:
        self.check_fields()
        if not INDEX_NAME.fullmatch(self.index or ""):
            raise ConfigError(f"Invalid index name {self.index!r}: use letters, digits, '.', '_' or '-' (max 64)")
        self.check_chunking(self.chunk_tokens, self.overlap_tokens)

    @staticmethod
    def check_chunking(chunk_tokens: int, overlap_tokens: int) -> None:
        """Refuse an overlap above half the chunk size (the rule ingest and re-index share).

        A chunk advances by ``chunk_tokens - overlap_tokens`` tokens; with an overlap close to the chunk size
        every token is embedded many times over, and at or above it the chunker cannot advance at all.

        Raises:
            ConfigError: Naming both values.
        """
        if overlap_tokens > chunk_tokens // 2:
            raise ConfigError(f"overlap_tokens must be at most half of chunk_tokens ({chunk_tokens // 2} for "
                              f"chunk_tokens {chunk_tokens}; got {overlap_tokens})")  # fmt: skip


@dataclass(frozen=True)
class ReindexConfig(_Config):
    """Rebuild an index from its stored texts, optionally with another embedding model or chunking."""

    name: str = _help("Name of the index to rebuild")
    embedding_model: str | None = _help("Registry name of the new embedding model (default: the index's own)",
                                        default=None)  # fmt: skip
    # The ranges are IngestConfig's own metadata, so the two configs cannot drift apart.
    chunk_tokens: int | None = field(default=None, metadata={
        **IngestConfig.__dataclass_fields__["chunk_tokens"].metadata,
        "help": "New chunk size in tokens (default: the index's own)"})  # fmt: skip
    overlap_tokens: int | None = field(default=None, metadata={
        **IngestConfig.__dataclass_fields__["overlap_tokens"].metadata,
        "help": "New overlap in tokens, at most half the chunk size (default: the index's own)"})  # fmt: skip

    def __post_init__(self) -> None:
        self.check_fields()
        if not INDEX_NAME.fullmatch(self.name or ""):
            raise ConfigError(f"Invalid index name {self.name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        if self.chunk_tokens is not None and self.overlap_tokens is not None:
            IngestConfig.check_chunking(self.chunk_tokens, self.overlap_tokens)

    def chunking(self, current: dict) -> dict:
        """Return the chunking to rebuild with: this config's values over the index's ``current`` ones.

        Raises:
            ConfigError: If the combination breaks IngestConfig's rule (say a new overlap above half the old size).
        """
        chunking = {"chunk_tokens": current["chunk_tokens"], "overlap_tokens": current["overlap_tokens"]}
        if self.chunk_tokens is not None:
            chunking["chunk_tokens"] = self.chunk_tokens
        if self.overlap_tokens is not None:
            chunking["overlap_tokens"] = self.overlap_tokens
        IngestConfig.check_chunking(chunking["chunk_tokens"], chunking["overlap_tokens"])
        return chunking


@dataclass(frozen=True)
class ChatConfig(_Config):
    """Settings of one conversation."""

    # Chosen by benchmarks/chat.py on the demo set: Gemma 3 270M base through a completion prompt answered more
    # accurately than SmolLM2-135M-Instruct through its chat template.
    model: str = _help("Registry name of the chat model (GGUF via llama.cpp, or a transformers folder)",
                       default="gemma3-270m-gguf")  # fmt: skip
    index: str | None = _help("RAG index to ground answers in; none gives an ungrounded plain chat", default="demo")
    top_k: int = _help("Passages retrieved and shown to the model as [S1]..[Sk]", default=5, low=1, high=20)
    temperature: float = _help("Sampling temperature; 0 is greedy (reproducible)", default=0.0, low=0.0, high=2.0,
                               step=0.05)  # fmt: skip
    max_new_tokens: int = _help("Longest reply, in tokens", default=192, low=1, high=4096, step=16)
    min_relevance: float = _help(
        "Least cosine similarity of the best passage for the corpus to count as covering the question",
        default=0.3,
        low=-1.0,
        high=1.0,
        step=0.05,
    )
    adapter: str | None = _help("LoRA adapter folder for a transformers model (from a fine-tuning run)", default=None)

    def __post_init__(self) -> None:
        self.check_fields()
        if not self.model:
            raise ConfigError("Choose a chat model")
        if self.index is not None and not INDEX_NAME.fullmatch(self.index):
            raise ConfigError(f"Invalid index name {self.index!r}")


DATASET_FORMATS = ("auto", "messages", "prompt_completion", "alpaca", "columns")
PRECISIONS = ("auto", "fp32", "bf16")
QUANTIZATIONS = ("none", "4bit", "8bit")
# Every linear layer of Gemma's attention and MLP blocks: the usual LoRA choice for Gemma 3 / MedGemma.
GEMMA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig(_Config):
    """One LoRA fine-tuning run (the page, ``workbench train CONFIG`` and ``python -m core.finetune.train``)."""

    base_model: str = _help("Registry name of a transformers model (role finetune_base) or a local model folder",
                            default="gemma3-270m")  # fmt: skip
    dataset: str = _help("JSONL, JSON or CSV file of training examples", default="data/finetune/medqa_demo.jsonl")
    dataset_format: str = _help(
        "messages (chat), prompt_completion, alpaca (instruction/input/output), columns (choose two), or auto",
        default="auto",
        choices=DATASET_FORMATS,
    )
    prompt_column: str | None = _help("Column holding the prompt (dataset_format=columns)", default=None)
    completion_column: str | None = _help("Column holding the answer (dataset_format=columns)", default=None)
    system_prompt: str = _help("Instruction put before every conversation that has none (empty: none)", default="")
    val_fraction: float = _help("Share of the examples held out for validation loss", default=0.1, low=0.0,
                                high=0.5, step=0.05)  # fmt: skip
    max_length: int = _help("Longest example in tokens, chat template included", default=512, low=16, high=131072,
                            step=64)  # fmt: skip
    overlong: str = _help("What to do with longer examples: truncate (keep the start) or drop", default="truncate",
                          choices=("truncate", "drop"))  # fmt: skip
    lora_r: int = _help("LoRA rank: size of the low-rank update (higher learns more, trains slower)", default=8,
                        low=1, high=512)  # fmt: skip
    lora_alpha: int | None = _help("LoRA scaling alpha (default: twice the rank)", default=None, low=1, high=2048)
    lora_dropout: float = _help("Dropout on the LoRA input during training", default=0.05, low=0.0, high=0.9,
                                step=0.01)  # fmt: skip
    target_modules: list[str] = _help(
        "Layers that get LoRA adapters (default: every attention and MLP projection)",
        default_factory=lambda: list(GEMMA_TARGET_MODULES),
    )
    learning_rate: float = _help("Peak learning rate of AdamW", default=2e-4, low=1e-7, high=0.5, step=1e-5)
    num_train_epochs: float = _help("Passes over the training split (ignored when max_steps > 0)", default=3.0,
                                    low=0.0, high=100.0, step=0.5)  # fmt: skip
    max_steps: int = _help("Stop after this many optimiser steps (0: train for num_train_epochs)", default=0, low=0,
                           high=1_000_000)  # fmt: skip
    batch_size: int = _help("Examples per step on each device", default=4, low=1, high=512)
    gradient_accumulation_steps: int = _help("Steps whose gradients are summed before an update", default=1, low=1,
                                             high=512)  # fmt: skip
    warmup_ratio: float = _help("Share of the steps with a linearly rising learning rate", default=0.03, low=0.0,
                                high=0.9, step=0.01)  # fmt: skip
    lr_scheduler: str = _help("Learning-rate schedule: cosine, linear or constant", default="cosine",
                              choices=("cosine", "linear", "constant"))  # fmt: skip
    weight_decay: float = _help("AdamW weight decay on the LoRA weights", default=0.0, low=0.0, high=1.0, step=0.01)
    seed: int = _help("Seed for the split, shuffling and LoRA initialisation", default=42, low=0, high=2**31 - 1)
    eval_steps: int = _help("Compute validation loss every N steps (0: only at the end)", default=20, low=0,
                            high=1_000_000)  # fmt: skip
    save_steps: int = _help("Save a resumable checkpoint every N steps", default=20, low=1, high=1_000_000)
    save_total_limit: int = _help("Checkpoints kept (older ones are deleted)", default=3, low=1, high=1000)
    precision: str = _help("auto (bf16 on a GPU that supports it, else fp32), fp32 or bf16; never fp16, which "
                           "overflows in Gemma 3", default="auto", choices=PRECISIONS)  # fmt: skip
    quantization: str = _help("Load the base in 4bit or 8bit with bitsandbytes (QLoRA; CUDA only)", default="none",
                              choices=QUANTIZATIONS)  # fmt: skip
    gradient_checkpointing: bool = _help(
        "Recompute activations in the backward pass: less GPU memory, about a third slower", default=False
    )
    padding_free: bool = _help(
        "Join each batch into one row without padding (attention kept within each example)", default=True
    )
    fused_loss: bool = _help(
        "Project to the vocabulary only where there are labels, in chunks (faster, less memory)", default=True
    )
    sample_prompts: list[str] = _help(
        "Prompts answered by the base and the tuned model after training (default: validation prompts)",
        default_factory=list,
    )
    n_samples: int = _help("How many side-by-side samples to generate after training (0: none)", default=3, low=0,
                           high=20)  # fmt: skip
    sample_max_new_tokens: int = _help("Longest sample answer, in tokens", default=96, low=1, high=2048, step=16)
    run_name: str = _help("Label of the run (default: base model and dataset file)", default="")

    def __post_init__(self) -> None:
        # These two refusals say why, so they come before the generic range and choice check, which would only
        # name the allowed values.
        if self.precision == "fp16":
            raise ConfigError("fp16 is refused: Gemma 3 activations overflow in fp16; use bf16 on a GPU or fp32")
        if isinstance(self.lora_r, int) and self.lora_r < 1:
            raise ConfigError(f"LoRA rank must be at least 1 (got {self.lora_r}): rank 0 trains nothing")
        self.check_fields()
        if not self.base_model:
            raise ConfigError("Choose a base model")
        if not self.dataset:
            raise ConfigError("Choose a dataset file")
        if self.dataset_format == "columns" and not (self.prompt_column and self.completion_column):
            raise ConfigError("dataset_format=columns needs prompt_column and completion_column")
        if not self.target_modules:
            raise ConfigError("Choose at least one target module for LoRA")
        if self.max_steps == 0 and self.num_train_epochs <= 0:
            raise ConfigError("Set num_train_epochs > 0 or max_steps > 0")

    @property
    def alpha(self) -> int:
        """The LoRA alpha in force (twice the rank unless set)."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r


@dataclass(frozen=True)
class SafetyTrainConfig(_Config):
    """Fit the learned safety layer (``workbench safety train``, the Safety page's Retrain)."""

    kind: str = _help("mlp (one hidden layer) or logreg", default="mlp", choices=("mlp", "logreg"))
    hidden: int = _help("Hidden units of the MLP", default=256, low=1, high=4096)
    ensemble: int = _help("Models fitted with consecutive seeds and averaged (stored as one)", default=5, low=1,
                          high=32)  # fmt: skip
    epochs: int = _help("Full-batch AdamW steps", default=150, low=1, high=100_000)
    learning_rate: float = _help("AdamW learning rate", default=0.01, low=1e-6, high=1.0, step=0.001)
    weight_decay: float = _help("AdamW weight decay", default=1e-3, low=0.0, high=1.0, step=0.001)
    seed: int = _help("Random seed (training is deterministic)", default=0, low=0, high=2**31 - 1)
    emergency_weight: float = _help("Weight of emergency prompts in the loss, on top of class balance (above 1: "
                                    "the layer leans to the banner when unsure)", default=1.5, low=0.1, high=10.0,
                                    step=0.1)  # fmt: skip
    false_block_budget: float = _help("Largest share of dev informational prompts the thresholds may block",
                                      default=0.02, low=0.0, high=1.0, step=0.005)  # fmt: skip
    false_emergency_budget: float = _help("Largest share of dev informational prompts given the emergency banner",
                                          default=0.04, low=0.0, high=1.0, step=0.005)  # fmt: skip
    user_examples: bool = _help("Add the user's examples to the training split", default=True)
    activate: bool = _help("Put the new layer in force when it passes the gate", default=True)

    def __post_init__(self) -> None:
        self.check_fields()


@dataclass(frozen=True)
class SystemConfig(_Config):
    """One system an evaluation compares: a chat model, an index (or none) and the chat settings."""

    name: str = _help("Label of the system in the report (unique within a run)", default="")
    model: str = _help("Registry name of the chat model (GGUF, or a transformers folder)", default="gemma3-270m-gguf")
    adapter: str | None = _help("LoRA adapter: a fine-tuning run id or an adapter folder (transformers models)",
                                default=None)  # fmt: skip
    index: str | None = _help("RAG index to ground answers in; none evaluates the plain chat", default="demo")
    top_k: int = _help("Passages retrieved and shown to the model", default=5, low=1, high=20)
    temperature: float = _help("Sampling temperature; 0 is greedy (reproducible)", default=0.0, low=0.0, high=2.0,
                               step=0.05)  # fmt: skip
    max_new_tokens: int = _help("Longest answer, in tokens", default=192, low=1, high=4096, step=16)
    min_relevance: float = _help("Least cosine similarity of the best passage for the corpus to count as covering "
                                 "the question", default=0.3, low=-1.0, high=1.0, step=0.05)  # fmt: skip
    batch_size: int = _help("Questions generated together (transformers models; greedy, left padding); 1 answers "
                            "one at a time", default=8, low=1, high=256)  # fmt: skip

    def __post_init__(self) -> None:
        self.check_fields()
        if not self.model:
            raise ConfigError("Choose a chat model for every system")
        if self.index is not None and not INDEX_NAME.fullmatch(self.index):
            raise ConfigError(f"Invalid index name {self.index!r}")

    @property
    def label(self) -> str:
        """The system's name, or one made from its model, adapter and index."""
        if self.name:
            return self.name
        adapter = f"+{self.adapter.rstrip('/').rsplit('/', 1)[-1]}" if self.adapter else ""
        return f"{self.model}{adapter}@{self.index or 'no-index'}"


@dataclass(frozen=True)
class EvalConfig(_Config):
    """One evaluation run (the Evaluate page, ``workbench eval run CONFIG``): an eval set and the systems."""

    eval_set: str = _help("JSONL eval set: question, reference (one or more), optional gold_sources and tags",
                          default="data/eval/demo_qa.jsonl")  # fmt: skip
    systems: list[dict] = _help("The systems to evaluate (each a SystemConfig); the first is the baseline",
                                default_factory=lambda: [SystemConfig().to_dict()])  # fmt: skip
    name: str = _help("Label of the run (default: eval set and systems)", default="")
    limit: int = _help("Evaluate only the first N valid questions (0: all)", default=0, low=0, high=1_000_000)
    tags: list[str] = _help("Only questions carrying one of these tags (empty: all)", default_factory=list)
    timeout_s: float = _help("A question still generating after this many seconds is stopped and counts as failed",
                             default=120.0, low=1.0, high=3600.0, step=10.0)  # fmt: skip
    resamples: int = _help("Paired bootstrap resamples for the confidence intervals", default=1000, low=1000,
                           high=100_000, step=1000)  # fmt: skip
    confidence: float = _help("Coverage of the confidence intervals", default=0.95, low=0.5, high=0.999, step=0.01)
    seed: int = _help("Seed of the bootstrap resampling", default=0, low=0, high=2**31 - 1)
    safety_sets: list[str] = _help(
        "Labelled safety sets scored with the safety layer in force (recall and false blocks)",
        default_factory=lambda: ["core/safety/examples/test.jsonl"],
    )

    def __post_init__(self) -> None:
        self.check_fields()
        if not self.eval_set:
            raise ConfigError("Choose an eval set")
        if not self.systems:
            raise ConfigError("Add at least one system to evaluate")
        labels = [self.system(i).label for i in range(len(self.systems))]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ConfigError(f"Two systems share the name {repeated[0]!r}; name each system differently")

    def system(self, i: int) -> SystemConfig:
        """The i-th system as a validated SystemConfig.

        Raises:
            ConfigError: If it has unknown keys or invalid values (named by its position).
        """
        spec = self.systems[i]
        if isinstance(spec, SystemConfig):
            return spec
        if not isinstance(spec, dict):
            raise ConfigError(f"System {i + 1} must be a mapping of settings (got {type(spec).__name__})")
        try:
            return SystemConfig.from_dict(spec)
        except ConfigError as exc:
            raise ConfigError(f"System {i + 1}: {exc}") from None

    def system_configs(self) -> list[SystemConfig]:
        """Every system, validated."""
        return [self.system(i) for i in range(len(self.systems))]
