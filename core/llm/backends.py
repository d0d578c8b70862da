"""Text generation backends, chosen from the model's format: llama.cpp for GGUF, transformers for HF folders.

Both stream text pieces, stop on one signal (a ``threading.Event`` set by the caller, or the caller abandoning the
stream), and hold a lock while generating: llama.cpp is documented as not thread-safe and a transformers model
shared between browser tabs must not run two generate() calls at once, so concurrent chats queue instead of
corrupting each other. The lock is released only once the model is idle again.
"""

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import WorkbenchError
from core.models import registry

logger = logging.getLogger(__name__)


class GenerationError(WorkbenchError):
    """A model cannot be loaded or cannot generate."""


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings for one reply."""

    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python."""

    kind = "gguf"

    def __init__(self, path: Path, name: str = "", n_ctx: int = 4096, n_threads: int | None = None):
        """Load the model (memory-mapped; about a second for the embedded models)."""
        from llama_cpp import Llama

        self.name = name or Path(path).name
        self.path = Path(path)
        self.lock = threading.Lock()
        self.llm = Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), verbose=False, seed=0
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        self._template = _compile_template(template) if template else None
        self.n_ctx = n_ctx

    @property
    def has_chat_template(self) -> bool:
        """Whether the model carries a chat template (instruction-tuned) or needs plain completion prompts."""
        return self._template is not None

    def render(self, messages: list[dict]) -> str:
        """Apply the model's chat template to ``messages`` and open the assistant turn."""
        if self._template is None:
            raise GenerationError(f"{self.name} has no chat template; use a completion prompt")
        # llama.cpp adds BOS itself when the model asks for it, so the template must not add another.
        return self._template.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, prompt: str, config: GenerationConfig, stop: threading.Event | None = None) -> Iterator[str]:
        """Generate a continuation of ``prompt`` piece by piece.

        Args:
            prompt: The full prompt (template already applied).
            config: Decoding settings.
            stop: Set it to end generation early; closing the returned iterator stops it too.

        Yields:
            Text pieces as the model produces them.
        """
        with self.lock:
            pieces = self.llm.create_completion(
                prompt,
                max_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=list(config.stop) or None,
                seed=config.seed,
                stream=True,
            )
            try:
                for piece in pieces:
                    if stop is not None and stop.is_set():
                        break
                    text = piece["choices"][0]["text"]
                    if text:
                        yield text
            finally:
                pieces.close()  # llama.cpp's own generator: no further token is evaluated once this returns


class TransformersGenerator:
    """A Hugging Face causal LM (optionally with a PEFT LoRA adapter) run by transformers."""

    kind = "hf"

    def __init__(self, path: Path, name: str = "", adapter: Path | None = None):
        """Load tokenizer and model (fp32 on CPU, bf16 on CUDA; never fp16, which overflows on Gemma 3)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or Path(path).name
        self.path = Path(path)
        self.lock = threading.Lock()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        # A fine-tuned adapter carries the tokenizer it was trained with (its chat template included).
        has_tokenizer = adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file()
        self.tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
        self.model = model.eval()
        self.worker: threading.Thread | None = None  # the latest generate() thread (idle once stream() returns)

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries a chat template."""
        return bool(self.tokenizer.chat_template)

    def render(self, messages: list[dict]) -> str:
        """Apply the tokenizer's chat template and open the assistant turn."""
        if not self.has_chat_template:
            raise GenerationError(f"{self.name} has no chat template; use a completion prompt")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(self, prompt: str, config: GenerationConfig, stop: threading.Event | None = None) -> Iterator[str]:
        """Generate a continuation of ``prompt`` piece by piece (see :meth:`LlamaCppGenerator.stream`).

        ``generate()`` runs in a worker thread feeding a streamer. Whatever ends the stream (the end of the reply,
        ``stop``, the caller closing the iterator, an error), the worker is told to stop at its next token and
        joined before the lock is released, so the next turn never runs a second ``generate()`` beside it.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        halt = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return halt.is_set() or (stop is not None and stop.is_set())

        with self.lock:
            # A template that already starts with BOS must not get a second one from the tokenizer.
            has_bos = self.tokenizer.bos_token and prompt.startswith(self.tokenizer.bos_token)
            inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not has_bos).to(self.device)
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            sampling = config.temperature > 0
            kwargs = dict(
                **inputs,
                max_new_tokens=config.max_new_tokens,
                do_sample=sampling,
                temperature=config.temperature if sampling else None,
                top_p=config.top_p if sampling else None,
                top_k=None,
                stop_strings=list(config.stop) or None,
                tokenizer=self.tokenizer,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
            )
            torch.manual_seed(config.seed)
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        self.model.generate(**kwargs)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True, name=f"generate-{self.name}")
            self.worker = worker
            worker.start()
            try:
                for text in streamer:
                    if stop is not None and stop.is_set():
                        break
                    if text:
                        yield text
            finally:
                halt.set()  # the stopping criterion ends generate() at its next token
                worker.join()
            if errors:
                raise GenerationError(f"Generation failed: {errors[0]}") from errors[0]


def load_generator(model_name: str, adapter: Path | None = None) -> LlamaCppGenerator | TransformersGenerator:
    """Load a registered model for generation; the backend follows the file type (txtai's if-chain).

    Args:
        model_name: Registry name of a ``chat`` or ``finetune_base`` model.
        adapter: Optional LoRA adapter folder (transformers models only).

    Returns:
        A generator.

    Raises:
        GenerationError: If the model is unknown, not ready (e.g. its file was deleted), or of a format that
            cannot generate text.
    """
    try:
        entry = registry.get_model(model_name)
    except WorkbenchError as exc:
        raise GenerationError(str(exc)) from exc
    if entry.status != "ready" or entry.path is None or not Path(entry.path).exists():
        raise GenerationError(f"Model {model_name} is not available ({entry.status}): {entry.detail}")
    if entry.role not in ("chat", "finetune_base"):
        raise GenerationError(f"{model_name} is a {entry.role} model and cannot generate text")
    if entry.format == "gguf":
        if adapter is not None:
            raise GenerationError("LoRA adapters apply to transformers models; export a merged GGUF instead")
        return LlamaCppGenerator(Path(entry.path), name=model_name)
    if entry.format == "hf":
        if adapter is not None and not (Path(adapter) / "adapter_config.json").exists():
            raise GenerationError(f"{adapter} is not a PEFT adapter folder (no adapter_config.json)")
        return TransformersGenerator(Path(entry.path), name=model_name, adapter=adapter)
    raise GenerationError(f"{model_name} has format {entry.format}, which cannot generate text")


def _compile_template(source: str):
    # Templates come from model files: render them in Jinja's sandbox, as transformers does.
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_template_error
    return env.from_string(source)


def _raise_template_error(message: str) -> None:
    raise GenerationError(f"Chat template error: {message}")
