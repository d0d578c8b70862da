"""Evaluate against the base: an evaluation of a fine-tuned adapter and the base it was trained on, side by side.

The eval set is the run's own validation split (rebuilt from the run's config with the same seed, so it is exactly
the split the run held out) or any eval set. Both systems share every setting but the adapter, so the paired
comparison isolates what the fine-tune changed.
"""

import json

from core import paths
from core.config import EvalConfig
from core.errors import WorkbenchError
from core.fileio import atomic_write_bytes

VALIDATION = "validation"  # the eval_set value that asks for the run's validation split


def validation_set(run_id: str) -> str:
    """Write a fine-tuning run's validation split as an eval set and return its path.

    Each validation conversation becomes a question (its last user message) with the answer it was trained on as
    the reference, tagged ``validation``.

    Raises:
        WorkbenchError: If the run held out no validation examples.
    """
    from core.config import TrainConfig
    from core.finetune import runs
    from core.finetune.dataset import prepare
    from core.finetune.model import training_tokenizer

    run = runs.get_run(run_id)
    config = TrainConfig.from_dict(run.config)
    data = prepare(config, training_tokenizer(config.base_model))
    if not data.val_conversations:
        raise WorkbenchError(f"Run {run.name} held out no validation examples (val_fraction {config.val_fraction:g});"
                             " choose an eval set instead")  # fmt: skip
    lines = []
    for n, messages in enumerate(data.val_conversations, start=1):
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        question = next(m["content"] for m in reversed(messages[:last]) if m["role"] == "user")
        lines.append(json.dumps({"id": f"val{n:04d}", "question": question, "reference": [messages[last]["content"]],
                                 "tags": [VALIDATION]}, ensure_ascii=False))  # fmt: skip
    folder = paths.runs_dir() / "eval_sets"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{run_id}-validation.jsonl"
    atomic_write_bytes(target, ("\n".join(lines) + "\n").encode("utf-8"))
    return str(target)


def against_base(run_id: str, eval_set: str = VALIDATION, index: str | None = None, limit: int = 0,
                 max_new_tokens: int = 192) -> EvalConfig:  # fmt: skip
    """The EvalConfig comparing a fine-tuned adapter with its base model.

    Args:
        run_id: A finished fine-tuning run.
        eval_set: ``validation`` (the run's held-out split) or the path of an eval set.
        index: Index to ground both systems in (None: plain chat, the way the adapter was trained).
        limit: Only the first N questions (0: all).
        max_new_tokens: Longest answer.

    Returns:
        The config: system 1 the base, system 2 the base with the adapter.

    Raises:
        WorkbenchError: If the run has no adapter yet, or the base is not a registered model.
    """
    from core.finetune import runs
    from core.models import registry

    run = runs.get_run(run_id)
    if not run.adapter:
        raise WorkbenchError(f"Run {run.name} has no saved adapter yet ({run.state})")
    base = run.config.get("base_model", "")
    registry.get_model(base)  # a base given as a folder path must be registered to be evaluated
    path = validation_set(run_id) if eval_set == VALIDATION else eval_set
    common = {"model": base, "index": index, "max_new_tokens": max_new_tokens}
    return EvalConfig(eval_set=path, name=f"{run.name}: fine-tuned vs base", limit=limit,
                      systems=[{"name": f"base ({base})", **common},
                               {"name": f"fine-tuned ({run.name})", "adapter": run_id, **common}])  # fmt: skip
