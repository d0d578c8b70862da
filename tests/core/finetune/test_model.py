"""Base-model loading and bitsandbytes: meaningful with or without bitsandbytes installed (requirements-gpu.txt)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from core import paths
from core.config import TrainConfig
from core.errors import WorkbenchError
from core.finetune.model import load_model, resolve_base


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: 4/8-bit loads there")
@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantization_without_cuda_is_refused_plainly(quantization):
    # A WorkbenchError naming CUDA, whether bitsandbytes is installed or not: never an ImportError or a traceback
    # from inside bitsandbytes or transformers' quantizer.
    with pytest.raises(WorkbenchError, match="needs a CUDA GPU") as caught:
        load_model(resolve_base("gemma3-270m"), TrainConfig(quantization=quantization))
    assert quantization in str(caught.value) and "fp32" in str(caught.value)


def test_an_unquantized_base_loads_without_importing_bitsandbytes():
    # In a fresh interpreter: whether transformers' availability checks find bitsandbytes or not, loading the base
    # in full precision must not take a bitsandbytes path.
    code = (
        "import json, sys, torch\n"
        "from core.config import TrainConfig\n"
        "from core.finetune.model import load_model, resolve_base\n"
        "model = load_model(resolve_base('gemma3-270m'), TrainConfig())\n"
        "print(json.dumps({'bnb_imported': sorted(m for m in sys.modules if m.startswith('bitsandbytes')),\n"
        "                  'dtype': str(next(model.parameters()).dtype),\n"
        "                  'linear': type(model.model.layers[0].self_attn.q_proj).__module__}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"bnb_imported": [], "dtype": "torch.float32", "linear": "torch.nn.modules.linear"}
