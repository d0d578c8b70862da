"""Chat templates for training: the model's own, or Gemma 3's for a Gemma base that has none; assistant-token masks."""

from dataclasses import dataclass

from core.errors import WorkbenchError

# Gemma 3's chat template (text-only part of the one shipped with google/gemma-3-*-it): a system message is
# folded into the first user turn, the assistant speaks as "model", and every turn ends with <end_of_turn>.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{%- endif -%}"
)
GEMMA_END_OF_TURN = "<end_of_turn>"


class TemplateError(WorkbenchError):
    """The model has no usable chat template for training."""


@dataclass(frozen=True)
class Encoded:
    """One tokenized training example."""

    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken (prompt, system, template tokens)

    @property
    def n_trained(self) -> int:
        """Tokens that carry a label."""
        return sum(1 for label in self.labels if label != -100)


def ensure_chat_template(tokenizer, model_type: str) -> str:
    """Give ``tokenizer`` a chat template: its own, else Gemma 3's for a Gemma-family model.

    Args:
        tokenizer: A transformers tokenizer (changed in place when it had no template).
        model_type: ``config.model_type`` of the base model.

    Returns:
        ``"model"`` or ``"gemma3"``: where the template came from.

    Raises:
        TemplateError: If the model has none and is not of the Gemma family.
    """
    if tokenizer.chat_template:
        return "model"
    if model_type.startswith("gemma") and GEMMA_END_OF_TURN in tokenizer.get_vocab():
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
        return "gemma3"
    raise TemplateError(
        f"The base model ({model_type}) has no chat template; use an instruction-tuned model or a Gemma-family one"
    )


def template_source(tokenizer) -> str:
    """``"gemma3"`` when the tokenizer carries the Gemma 3 template added here, else ``"model"`` (its own)."""
    return "gemma3" if tokenizer.chat_template == GEMMA_CHAT_TEMPLATE else "model"


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn (the EOS and, for Gemma templates, <end_of_turn>)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    vocab = tokenizer.get_vocab()
    if GEMMA_END_OF_TURN in vocab and "<end_of_turn>" in (tokenizer.chat_template or ""):
        ids.append(vocab[GEMMA_END_OF_TURN])
    return ids


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """Apply the chat template to ``messages`` as text."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode_conversation(tokenizer, messages: list[dict]) -> Encoded:
    """Tokenize a conversation with labels on the assistant turns only, each ending with its end-of-turn token.

    The assistant spans are found by rendering the conversation up to each assistant turn with and without the
    generation prompt; this works for any template that renders a conversation's prefix as a prefix of its text.

    Args:
        tokenizer: A fast tokenizer with a chat template.
        messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.

    Returns:
        Token ids and labels.

    Raises:
        TemplateError: If the template does not render prefixes consistently.
    """
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1]).rstrip()
        if not (through.startswith(before) and text.startswith(through)):
            raise TemplateError("The chat template does not render a conversation's start as a prefix of it")
        spans.append((len(before), len(through)))
    # The text ends right after the last assistant's end-of-turn token: nothing follows the turn the model learns
    # to close (Gemma's template adds a newline).
    if messages[-1]["role"] == "assistant":
        text = text[: spans[-1][1]]
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token_id, (start, _end) in zip(encoding["input_ids"], encoding["offset_mapping"], strict=True):
        trained = any(lo <= start < hi for lo, hi in spans)
        labels.append(token_id if trained else -100)
    return Encoded(input_ids=list(encoding["input_ids"]), labels=labels)
