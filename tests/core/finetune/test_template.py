"""Chat templates for training: Gemma's template added, assistant-only labels, end-of-turn trained."""

import pytest

from core.finetune.template import GEMMA_END_OF_TURN, TemplateError, encode_conversation, ensure_chat_template


def decode_trained(tokenizer, encoded):
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != -100])


def test_gemma_base_gets_gemma_template_and_answer_is_the_only_trained_text(gemma_tokenizer):
    messages = [{"role": "user", "content": "What is a normal PR interval?"},
                {"role": "assistant", "content": "About 120 to 200 ms."}]  # fmt: skip
    encoded = encode_conversation(gemma_tokenizer, messages)
    eot = gemma_tokenizer.convert_tokens_to_ids(GEMMA_END_OF_TURN)
    assert encoded.input_ids[-1] == eot and encoded.labels[-1] == eot  # ends with the trained end-of-turn token
    assert decode_trained(gemma_tokenizer, encoded) == "About 120 to 200 ms.<end_of_turn>"
    text = gemma_tokenizer.decode(encoded.input_ids)
    prompt = "<bos><start_of_turn>user\nWhat is a normal PR interval?<end_of_turn>\n<start_of_turn>model\n"
    assert text.startswith(prompt)
    first_trained = next(i for i, label in enumerate(encoded.labels) if label != -100)
    assert gemma_tokenizer.decode(encoded.input_ids[:first_trained]) == prompt  # the whole prompt is masked


def test_every_assistant_turn_is_trained_and_system_and_users_are_masked(gemma_tokenizer):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is bradycardia?"},
        {"role": "assistant", "content": "A resting rate below 60."},
        {"role": "user", "content": "And tachycardia?"},
        {"role": "assistant", "content": "Above 100."},
    ]
    encoded = encode_conversation(gemma_tokenizer, messages)
    trained = decode_trained(gemma_tokenizer, encoded)
    assert trained == "A resting rate below 60.<end_of_turn>Above 100.<end_of_turn>"
    assert "Answer briefly." in gemma_tokenizer.decode(encoded.input_ids)  # folded into the first user turn


def test_a_model_template_is_kept(gemma_tokenizer):
    tokenizer = gemma_tokenizer.__class__.from_pretrained(gemma_tokenizer.name_or_path)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert ensure_chat_template(tokenizer, "gemma3_text") == "model"


def test_non_gemma_model_without_template_is_refused(gemma_tokenizer):
    tokenizer = gemma_tokenizer.__class__.from_pretrained(gemma_tokenizer.name_or_path)
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        ensure_chat_template(tokenizer, "llama")
