"""Batched greedy generation for transformers models, with every answer still checked exactly as ``core.chat`` does.

A chat turn generates through ``generator.stream(prompt, ...)``. The batched path runs each question's turn twice
through the very same :func:`core.chat.answer.answer_stream`:

1. with :class:`PromptRecorder`, which remembers the prompt the turn built (after the input screen, retrieval and
   passage cleaning) and stops the turn there;
2. the recorded prompts are generated together by :func:`generate_batch` (left padding, greedy, the turn's stop
   strings and token limit), shortest first so that little padding is wasted;
3. with :class:`Replay`, which streams each prompt's batch output back, so that the output screen, the citation
   check and the answer's fields come from the chat's own code.

Retrieval and screening run in both passes (milliseconds) and are deterministic. Greedy outputs of a padded batch
can differ from one-at-a-time outputs in rare ties of floating-point sums; ``benchmarks/evaluate.py`` measures the
share of identical answers.
"""

import re
import time
from dataclasses import dataclass

from core.chat.answer import RepetitionGuard
from core.llm.backends import GenerationConfig, GenerationError


class _Recorded(Exception):
    """Ends a turn in the first pass as soon as its prompt is known."""


class _StandIn:
    """Looks like the wrapped generator (name, chat template, tokenizer) to the chat turn; generates nothing."""

    def __init__(self, generator) -> None:
        self.inner = generator
        self.name = generator.name

    @property
    def has_chat_template(self) -> bool:
        """The wrapped model's."""
        return self.inner.has_chat_template

    def render(self, messages: list[dict]) -> str:
        """The wrapped model's chat template."""
        return self.inner.render(messages)

    def count_tokens(self, text: str) -> int:
        """The wrapped model's tokenizer."""
        return self.inner.count_tokens(text)


class PromptRecorder(_StandIn):
    """Stands in for a generator: records the prompt and decoding settings, then stops the turn."""

    def __init__(self, generator) -> None:
        """Wrap ``generator`` (its name, template and tokenizer are used as they are)."""
        super().__init__(generator)
        self.prompt: str | None = None
        self.config: GenerationConfig | None = None

    def stream(self, prompt: str, config: GenerationConfig, stop=None):
        """Record and stop: raises inside the turn's generation loop."""
        self.prompt, self.config = prompt, config
        raise _Recorded
        yield ""  # pragma: no cover - makes this a generator, like the real backends


def record_prompt(turn, recorder: PromptRecorder) -> tuple[str | None, GenerationConfig | None, object]:
    """Run a turn (an ``answer_stream`` iterator over ``recorder``) up to generation.

    Returns:
        (prompt, decoding settings, None) when the turn reached generation; (None, None, final answer) when it
        ended before (blocked question, corpus not covering it).
    """
    final = None
    try:
        for event in turn:
            if event["type"] == "final":
                final = event["answer"]
    except _Recorded:
        return recorder.prompt, recorder.config, None
    return None, None, final


class Replay(_StandIn):
    """Stands in for a generator in the second pass: streams the batch output of each prompt."""

    def __init__(self, generator, outputs: dict[str, str]) -> None:
        """``outputs`` maps each recorded prompt to its generated text."""
        super().__init__(generator)
        self.outputs = outputs

    def stream(self, prompt: str, config: GenerationConfig, stop=None):
        """Yield the batch output for ``prompt`` word by word, as the streamer of a live turn would.

        Raises:
            GenerationError: If the turn built a prompt the first pass did not record.
        """
        if prompt not in self.outputs:
            raise GenerationError("The second pass built a different prompt than the first (retrieval changed?)")
        for piece in re.findall(r"\s*\S+|\s+$", self.outputs[prompt]):
            if stop is not None and stop.is_set():
                return
            yield piece


@dataclass(frozen=True)
class BatchOutput:
    """One prompt's generated text and how its generation went."""

    text: str
    new_tokens: int
    batch_ms: float  # wall time of the batch it was generated in
    batch_size: int
    timed_out: bool


def generate_batch(
    generator, prompts: list[str], config: GenerationConfig, batch_size: int, max_time_s: float | None = None
) -> list[BatchOutput]:
    """Greedy generation of many prompts with a transformers model, ``batch_size`` at a time, left padded.

    ``model.generate`` keeps every row of a batch until the longest answer ends, so one rambling answer makes the
    whole batch pay for its tokens. This loop is the same greedy decoding (argmax, the model's end tokens, the
    turn's stop strings at the end of the text, its token limit) but drops each row from the batch, and from the
    KV cache, as soon as it is finished.

    Args:
        generator: A loaded ``TransformersGenerator`` (its lock is held while generating).
        prompts: Full prompts (templates applied), as the chat builds them.
        config: Token limit and stop strings (greedy whatever its temperature: batching is for greedy runs).
        batch_size: Prompts per batch.
        max_time_s: The time one question may take; a batch of n stops after n times this, and its unfinished
            answers are marked ``timed_out``.

    Returns:
        One output per prompt, in the order given.
    """
    tok = generator.tokenizer

    def encode(prompt: str) -> list[int]:
        # As the one-at-a-time path: a template that starts with BOS gets no second one from the tokenizer.
        has_bos = bool(tok.bos_token) and prompt.startswith(tok.bos_token)
        return tok(prompt, add_special_tokens=not has_bos)["input_ids"]

    encoded = [encode(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths: little padding
    results: list[BatchOutput | None] = [None] * len(prompts)
    with generator.lock:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            t0 = time.perf_counter()
            # A batch answers its questions together: it gets the time they would get one at a time.
            budget = max_time_s * len(chunk) if max_time_s else None
            texts, counts, timed_out = _greedy_batch(generator, [encoded[i] for i in chunk], config, budget)
            elapsed = round((time.perf_counter() - t0) * 1000, 1)
            for row, i in enumerate(chunk):
                results[i] = BatchOutput(texts[row], counts[row], elapsed, len(chunk), timed_out[row])
    return results  # type: ignore[return-value]


def _end_tokens(generator) -> set[int]:
    ids = getattr(generator.model.generation_config, "eos_token_id", None)
    ids = set(ids) if isinstance(ids, list) else {ids}
    ids.add(generator.tokenizer.eos_token_id)
    return {i for i in ids if i is not None}


def _greedy_batch(generator, rows: list[list[int]], config: GenerationConfig, max_time_s: float | None):
    """Decode one left-padded batch greedily; returns (texts, new-token counts, timed-out flags) per row."""
    import torch

    tok, model, device = generator.tokenizer, generator.model, generator.device
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ends, stops = _end_tokens(generator), tuple(config.stop)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, r in enumerate(rows):
        ids[n, width - len(r) :] = torch.tensor(r)
        mask[n, width - len(r) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): real tokens count from 0 whatever the padding
    generated: list[list[int]] = [[] for _ in rows]
    guards = [RepetitionGuard() for _ in rows]  # the chat stops a model that repeats itself; so does the batch
    texts, timed_out = [""] * len(rows), [False] * len(rows)
    active = list(range(len(rows)))  # batch row -> prompt row, for the rows still generating
    deadline = time.monotonic() + max_time_s if max_time_s else None
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache, last = out.past_key_values, positions[:, -1]
        while True:
            next_ids = out.logits[:, -1, :].argmax(-1)  # (B,) greedy
            keep = []
            for b, row in enumerate(active):
                token = int(next_ids[b])
                if token in ends:
                    continue
                generated[row].append(token)
                before, texts[row] = texts[row], tok.decode(generated[row], skip_special_tokens=True)
                guards[row].feed(texts[row][len(before) :] if texts[row].startswith(before) else texts[row])
                # Stop strings are matched on the text with special tokens ("<end_of_turn>" is one), as
                # generate()'s StopStringCriteria matches token strings; what is kept is the text without them.
                raw = tok.decode(generated[row], skip_special_tokens=False) if stops else ""
                if len(generated[row]) >= config.max_new_tokens or any(s in raw for s in stops):
                    continue
                if guards[row].seen:
                    continue
                keep.append(b)
            if not keep:
                break
            if deadline is not None and time.monotonic() > deadline:
                for b in keep:
                    timed_out[active[b]] = True
                break
            if len(keep) < len(active):  # finished rows leave the batch and the KV cache
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, last, next_ids = mask[index], last[index], next_ids[index]
                active = [active[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            last = last + 1
            out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=last[:, None],
                        past_key_values=cache, use_cache=True,
                        cache_position=torch.tensor([mask.shape[1] - 1], device=device))  # fmt: skip
    return texts, [len(g) for g in generated], timed_out
