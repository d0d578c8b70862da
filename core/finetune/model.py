"""The base model of a run: resolve it, load tokenizer and weights (precision, 4/8-bit), attach LoRA."""

import logging
import os
from pathlib import Path

from core.config import TrainConfig
from core.errors import WorkbenchError
from core.models import registry

logger = logging.getLogger(__name__)


class BaseModelError(WorkbenchError):
    """The base model cannot be found or loaded as configured."""


def resolve_base(name: str) -> Path:
    """Return the folder of a registered ``finetune_base``/``chat`` transformers model, or of a local path.

    Raises:
        BaseModelError: If it is not a transformers model folder that exists.
    """
    try:
        entry = registry.get_model(name)
    except WorkbenchError:
        entry = None
    if entry is not None:
        if entry.format != "hf" or entry.role not in ("finetune_base", "chat"):
            raise BaseModelError(f"{name} is a {entry.format} {entry.role} model; fine-tuning needs a transformers "
                                 "causal LM folder (role finetune_base)")  # fmt: skip
        if entry.status != "ready" or not entry.path or not Path(entry.path).is_dir():
            raise BaseModelError(f"Base model {name} is not available ({entry.status}): {entry.detail}")
        return Path(entry.path)
    path = Path(name).expanduser()
    if not path.exists():
        raise BaseModelError(f"Base model not found: {name} is neither a registered model nor an existing folder")
    if not (path / "config.json").is_file():
        raise BaseModelError(f"{name} is not a transformers model folder (no config.json)")
    return path.resolve()


def load_tokenizer(path: Path):
    """Load the tokenizer of a base model folder, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def compute_dtype(config: TrainConfig):
    """The training dtype: bf16 only on a GPU that supports it (or when asked), else fp32; never fp16."""
    import torch

    cuda = torch.cuda.is_available()
    if config.precision == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise BaseModelError("This GPU does not support bf16; use precision fp32 (fp16 overflows in Gemma 3)")
        return torch.bfloat16
    if config.precision == "auto" and cuda and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(path: Path, config: TrainConfig):
    """Load the base model for training, quantised with bitsandbytes when asked (CUDA only).

    Raises:
        BaseModelError: On 4/8-bit without CUDA.
        ImportError: If bitsandbytes is needed and missing.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(config)
    kwargs: dict = {"dtype": dtype}
    if config.quantization != "none":
        if not torch.cuda.is_available():
            raise BaseModelError(f"{config.quantization} quantization needs a CUDA GPU (bitsandbytes); "
                                 "on CPU the base is trained in fp32")  # fmt: skip
        try:
            import bitsandbytes  # noqa: F401 - checked here to fail with a clear message
        except ImportError as exc:
            raise ImportError("4/8-bit training needs the bitsandbytes package: run `make setup GPU=1` "
                              "(pip install -r requirements-gpu.txt)") from exc  # fmt: skip
        from transformers import BitsAndBytesConfig

        if config.quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype,
            )  # fmt: skip
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    # Eager attention is what Gemma 3 recommends for training; sdpa is as exact and faster here, and it builds
    # the block-diagonal mask of padding-free batches from their position ids.
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", **kwargs)
    if config.quantization == "none" and torch.cuda.is_available():
        model = model.to("cuda")
    model.config.use_cache = False
    return model


def lora_config(config: TrainConfig):
    """The PEFT ``LoraConfig`` of a run."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def check_targets(model, target_modules: list[str]) -> None:
    """Refuse target module names the model does not have (PEFT's own error lists every module).

    Raises:
        BaseModelError: Naming the unknown targets and the linear layers available.
    """
    import torch

    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    unknown = sorted(set(target_modules) - linear)
    if unknown:
        raise BaseModelError(f"Unknown LoRA target modules: {', '.join(unknown)}; this model has "
                             f"{', '.join(sorted(linear - {'lm_head'}))}")  # fmt: skip


def training_tokenizer(base_model: str):
    """The tokenizer a run of ``base_model`` trains with: its chat template, or Gemma 3's (see ``template``).

    Raises:
        BaseModelError: If the base model cannot be found.
        TemplateError: If it has no chat template and is not of the Gemma family.
    """
    from transformers import AutoConfig

    from core.finetune.template import ensure_chat_template

    path = resolve_base(base_model)
    tokenizer = load_tokenizer(path)
    ensure_chat_template(tokenizer, AutoConfig.from_pretrained(path).model_type)
    return tokenizer


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable (4/8-bit quantisation, bf16 and gradient checkpointing are offered then)."""
    import torch

    return torch.cuda.is_available()
