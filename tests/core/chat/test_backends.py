"""Generation backends on the embedded models: llama.cpp (GGUF) and transformers (HF folder, with a LoRA adapter)."""

import pytest

from core.llm.backends import GenerationConfig, GenerationError, TransformersGenerator, load_generator
from core.models import embedded


def generate(generator, prompt, **kwargs):
    return "".join(generator.stream(prompt, GenerationConfig(max_new_tokens=12, **kwargs)))


def test_llama_cpp_chat_template_and_greedy_determinism():
    smol = load_generator("smollm2-135m-instruct")
    assert smol.kind == "gguf" and smol.has_chat_template
    prompt = smol.render([{"role": "user", "content": "Name a heart chamber."}])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert generate(smol, prompt) == generate(smol, prompt)  # greedy is reproducible
    assert smol.count_tokens("atrial fibrillation") > 1


def test_base_gemma_has_no_template_and_stops_at_the_stop_string():
    gemma = load_generator("gemma3-270m-gguf")
    assert not gemma.has_chat_template
    with pytest.raises(GenerationError, match="no chat template"):
        gemma.render([{"role": "user", "content": "hi"}])
    text = generate(gemma, "Question: What pumps blood?\nAnswer:", stop=("\n",))
    assert text and "\n" not in text


def test_embedding_models_cannot_generate():
    with pytest.raises(GenerationError, match="cannot generate"):
        load_generator("all-minilm-l6-v2")


@pytest.mark.slow
def test_transformers_backend_with_a_lora_adapter(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = embedded.model_path("gemma3-270m")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(0)  # lora_A is drawn at random: unseeded, a small adapter sometimes left greedy text alone
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a clearly non-zero adapter, so that it changes the output
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(0.2)
    peft_model.save_pretrained(tmp_path / "adapter")
    plain = TransformersGenerator(base, name="gemma3-270m")
    tuned = load_generator("gemma3-270m", adapter=tmp_path / "adapter")
    prompt = "Question: What is the PR interval?\nAnswer:"
    assert tuned.kind == "hf" and not tuned.has_chat_template
    out_plain, out_tuned = generate(plain, prompt), generate(tuned, prompt)
    assert out_plain.strip() and out_tuned.strip() and out_plain != out_tuned
    with pytest.raises(GenerationError, match="not a PEFT adapter"):
        load_generator("gemma3-270m", adapter=tmp_path)


@pytest.fixture(scope="module")
def hf_gemma():
    return TransformersGenerator(embedded.model_path("gemma3-270m"), name="gemma3-270m")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["event", "abandon"])
def test_transformers_stop_leaves_the_model_idle_at_once(hf_gemma, how):
    import threading
    import time

    stop = threading.Event()
    pieces = hf_gemma.stream("Question: List the causes of chest pain.\nAnswer:", GenerationConfig(max_new_tokens=400),
                             stop)  # fmt: skip
    received = [next(pieces), next(pieces)]
    started = time.monotonic()
    if how == "event":
        stop.set()  # the Stop button's signal
        received += list(pieces)
    else:
        pieces.close()  # the page abandoned the stream (a rerun interrupted it)
    # The worker was joined before stream() let go of the lock: nothing is generating any more.
    assert not hf_gemma.worker.is_alive() and not hf_gemma.lock.locked()
    assert time.monotonic() - started < 5  # far less than 400 tokens would take
    assert len(received) < 10
    # The next turn starts right away and is not interleaved with the abandoned one.
    assert generate(hf_gemma, "Question: What pumps blood?\nAnswer:").strip()


def test_llama_cpp_stop_event_and_abandoning_release_the_model():
    import threading

    smol = load_generator("smollm2-135m-instruct")
    prompt = smol.render([{"role": "user", "content": "Write a long story about the heart."}])
    stop = threading.Event()
    pieces = smol.stream(prompt, GenerationConfig(max_new_tokens=300), stop)
    received = [next(pieces), next(pieces)]
    stop.set()
    received += list(pieces)
    assert len(received) <= 3 and not smol.lock.locked()
    pieces = smol.stream(prompt, GenerationConfig(max_new_tokens=300))
    next(pieces)
    pieces.close()
    assert not smol.lock.locked()
    assert generate(smol, prompt)
