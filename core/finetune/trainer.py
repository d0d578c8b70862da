"""TRL's SFTTrainer with a labelled-positions loss, padding-free batches and checkpoints without pickle."""

import json
import os
import random
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from trl import SFTTrainer

from core.fileio import atomic_write_json
from core.finetune.head import labelled_nll_sum

CHECKPOINT_DONE = "workbench_checkpoint.json"  # written last: a checkpoint without it was cut off mid-save


class WorkbenchTrainer(SFTTrainer):
    """``SFTTrainer`` whose training loss projects only labelled positions and whose checkpoints are pickle-free.

    Everything else (optimiser, schedule, gradient accumulation, evaluation, resuming, ``accelerate launch``) is
    the trainer's own. The loss is the same quantity as TRL's: summed next-token NLL over labelled tokens divided
    by the number of labelled tokens in the accumulated batch.
    """

    def __init__(self, *args, fused_loss: bool = True, **kwargs):
        """Create the trainer; ``fused_loss=False`` keeps TRL's own loss (for comparisons)."""
        super().__init__(*args, **kwargs)
        self.trained_tokens = 0  # input tokens (not padding) seen in training steps
        # Decided once: the model's head does not change during training. The fused loss needs an fp32, frozen,
        # uncapped head (a bf16 model on a GPU keeps TRL's loss, which has a compact Triton path there).
        base = self.model.get_base_model()  # the PeftModel's causal LM, LoRA layers injected
        head = base.get_output_embeddings()
        self._backbone = getattr(base, base.base_model_prefix)
        self._head = head
        self.fused_loss = (
            fused_loss
            and base.config.get_text_config().final_logit_softcapping is None
            and head.weight.dtype == torch.float32
            and not head.weight.requires_grad
        )

    # -- loss ------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Loss on labelled positions only; falls back to TRL's when the fused path does not apply."""
        if model.training:
            if "attention_mask" in inputs:
                self.trained_tokens += int(inputs["attention_mask"].sum())
            else:
                self.trained_tokens += int(inputs["position_ids"].numel())
        # A model wrapped for DDP must be called through the wrapper (gradient sync): TRL's loss then.
        if not self.fused_loss or return_outputs or model is not self.model:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        keys = ("input_ids", "attention_mask", "position_ids")
        hidden = self._backbone(**{k: inputs[k] for k in keys if k in inputs}, use_cache=False).last_hidden_state
        total, count = labelled_nll_sum(hidden, self._head.weight, inputs["labels"])
        denominator = num_items_in_batch if num_items_in_batch is not None else max(count, 1)
        loss = total / torch.as_tensor(denominator, device=total.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return loss

    # -- checkpoints without pickle --------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # The adapter as PEFT saves it (safetensors) and the arguments as JSON; the stock version adds a pickled
        # training_args.bin and a 33 MB tokenizer copy per checkpoint.
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.model.save_pretrained(output_dir, state_dict=state_dict)
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string())

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            atomic_write_json(folder / CHECKPOINT_DONE, {"step": self.state.global_step, "complete": True})

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self.args.should_save:
            return
        state = self.optimizer.state_dict()
        tensors, scalars = {}, {}
        for param_id, values in state["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{param_id}.{name}"] = value.detach().contiguous().cpu()
                else:
                    scalars[f"{param_id}.{name}"] = value
        safetensors.torch.save_file(tensors, os.path.join(output_dir, "optimizer.safetensors"))
        meta = {"param_groups": state["param_groups"], "scalars": scalars, "scheduler": self.lr_scheduler.state_dict()}
        Path(output_dir, "optimizer.json").write_text(json.dumps(meta))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or not os.path.isfile(os.path.join(checkpoint, "optimizer.json")):
            return
        meta = json.loads(Path(checkpoint, "optimizer.json").read_text())
        device = next(p for p in self.model.parameters() if p.requires_grad).device
        restored: dict[int, dict] = {}
        for key, value in safetensors.torch.load_file(os.path.join(checkpoint, "optimizer.safetensors")).items():
            param_id, name = key.split(".", 1)
            # AdamW keeps `step` on the CPU unless it runs fused/capturable; moment tensors live with the params.
            restored.setdefault(int(param_id), {})[name] = value if name == "step" else value.to(device)
        for key, value in meta["scalars"].items():
            param_id, name = key.split(".", 1)
            restored.setdefault(int(param_id), {})[name] = value
        self.optimizer.load_state_dict({"state": restored, "param_groups": meta["param_groups"]})
        self.lr_scheduler.load_state_dict(meta["scheduler"])

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)
        numpy_state = np.random.get_state()
        states = {
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *[float(x) for x in numpy_state[2:]]],
            "cpu": torch.random.get_rng_state().tolist(),
        }
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.random.get_rng_state().tolist()
        Path(output_dir, f"rng_state_{self.args.process_index}.json").write_text(json.dumps(states))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        path = Path(checkpoint or "", f"rng_state_{self.args.process_index}.json")
        if checkpoint is None or not path.is_file():
            return
        states = json.loads(path.read_text())
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), int(pos), int(has_gauss), cached))
        torch.random.set_rng_state(torch.tensor(states["cpu"], dtype=torch.uint8))
        if torch.cuda.is_available() and "cuda" in states:
            torch.cuda.random.set_rng_state(torch.tensor(states["cuda"], dtype=torch.uint8))
