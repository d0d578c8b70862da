"""One chat turn: screen the question, retrieve numbered sources, generate (streaming), verify citations, screen.

:func:`answer_stream` yields events as the turn advances (what the Chat page draws); :func:`ask` runs it to the
end and returns the :class:`Answer` that ``workbench ask --json`` prints.
"""

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from core.chat.citations import verify_citations
from core.config import ChatConfig
from core.errors import WorkbenchError
from core.llm.backends import GenerationConfig
from core.rag.retrieve import retrieve
from core.safety import RuleStore, screen_input, screen_output

MAX_QUESTION_CHARS = 8000
NOT_COVERED = (
    "The indexed documents do not cover this question, so I cannot answer it from them. Try rephrasing, or add "
    "documents that cover it."
)
SYSTEM_PROMPT = (
    "You are a careful medical reference assistant. Answer the question using only the numbered sources. "
    "After each sentence, cite its source like [S1]. If the sources do not contain the answer, say so. "
    "Answer in one to three short sentences."
)
PLAIN_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly. You are not a doctor and give no medical advice."
COMPLETION_STOPS = ("\nQuestion:", "\n\n", "\nSources:", "<end_of_turn>", "<eos>")


class ChatError(WorkbenchError):
    """A question cannot be answered as asked (empty, too long, missing index or model)."""


@dataclass
class Answer:
    """A finished turn, as stored with the message and printed by ``workbench ask --json``."""

    answer: str
    citations: list[dict] = field(default_factory=list)
    unsupported_sentences: list[str] = field(default_factory=list)
    dropped_labels: list[str] = field(default_factory=list)
    safety: dict = field(default_factory=dict)  # {"input": verdict, "output": verdict}
    timings: dict = field(default_factory=dict)  # retrieval_ms, ttft_ms, tokens_per_s, total_ms, new_tokens
    sources: list[dict] = field(default_factory=list)  # [{"label": "S1", "chunk_id", "source", "page", ...}]
    model: str = ""
    index: str | None = None
    grounded: bool = True  # False: plain chat without an index
    covered: bool = True  # False: retrieval found nothing relevant, the model was not asked
    blocked: bool = False  # True: the safety layer refused the question or the answer
    stopped: bool = False  # True: the user stopped generation
    prompt: str = ""

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def build_prompt(generator, question: str, sources: list[dict]) -> tuple[str, tuple[str, ...]]:
    """Assemble the prompt: the model's chat template when it has one, else a plain completion prompt.

    Args:
        generator: A loaded generator (``has_chat_template``, ``render``).
        question: The (redacted) question.
        sources: Numbered passages; empty for an ungrounded chat.

    Returns:
        (prompt, stop sequences).
    """
    numbered = "\n\n".join(f"[{s['label']}] {s['text']}" for s in sources)
    if generator.has_chat_template:
        if sources:
            messages = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Sources:\n{numbered}\n\nQuestion: {question}"},
            ]
        else:
            messages = [{"role": "system", "content": PLAIN_SYSTEM_PROMPT}, {"role": "user", "content": question}]
        prompt = generator.render(messages)
        # Gemma-style templates end turns with <end_of_turn>; stop there even if the runtime does not know it.
        return prompt, ("<end_of_turn>",) if "<end_of_turn>" in prompt else ()
    # A base model continues text: show it the sources and an "Answer:" to complete, and stop at the next turn.
    header = f"Use the sources to answer the question.\n\n{numbered}\n\n" if sources else ""
    return f"{header}Question: {question}\nAnswer:", COMPLETION_STOPS


def answer_stream(
    question: str,
    config: ChatConfig,
    generator,
    embedder=None,
    index_state=None,
    should_stop: Callable[[], bool] = bool,
    rules: RuleStore | None = None,
) -> Iterator[dict]:
    """Run one turn, yielding events: ``input_safety``, ``sources``, ``token`` (text pieces), then ``final``.

    Args:
        question: What the user asked.
        config: Model, index and decoding settings.
        generator: The loaded model (see ``core.llm.backends.load_generator``).
        embedder: The index's embedding model (needed when ``config.index`` is set).
        index_state: The loaded index (needed when ``config.index`` is set).
        should_stop: Polled while generating; True stops early (the partial answer is kept).
        rules: A long-lived rule store (reloads only when a rule file changes); a fresh one when omitted.

    Yields:
        Event dicts; the last has ``type == "final"`` and ``answer`` (an :class:`Answer`).

    Raises:
        ChatError: For an empty or overlong question, or an index without its embedder.
    """
    started = time.perf_counter()
    question = (question or "").strip()
    if not question:
        raise ChatError("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ChatError(f"The question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}.")
    result = Answer(answer="", model=generator.name, index=config.index, grounded=config.index is not None)
    ruleset = (rules or RuleStore()).current()
    verdict = screen_input(question, ruleset)
    result.safety["input"] = verdict.to_dict()
    yield {"type": "input_safety", "verdict": result.safety["input"]}
    if verdict.action == "block":
        result.answer, result.blocked = " ".join(verdict.messages), True
        yield {"type": "final", "answer": result}
        return
    asked = verdict.redacted  # personal data never reaches the model
    sources = []
    if config.index is not None:
        if embedder is None or index_state is None:
            raise ChatError(f"Index {config.index} is not loaded")
        t0 = time.perf_counter()
        hits = retrieve(index_state, asked, embedder.encode([asked])[0], k=config.top_k)
        result.timings["retrieval_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        if not hits or max(h.dense_score or 0 for h in hits) < config.min_relevance:
            result.answer, result.covered = NOT_COVERED, False
            result.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
            yield {"type": "final", "answer": result}
            return
        # Retrieved text is screened too: a passage carrying injected instructions is cleaned before the model
        # reads it (its rule hits are reported in the output verdict).
        passages = screen_output("", {"passages": [h.text for h in hits]}, ruleset, log=False)
        cleaned = list(passages.redacted_passages) or [h.text for h in hits]
        for n, (hit, text) in enumerate(zip(hits, cleaned, strict=True), start=1):
            sources.append({"label": f"S{n}", "chunk_id": hit.chunk_id, "source": hit.source, "page": hit.page,
                            "record": hit.record, "start": hit.start, "end": hit.end, "score": hit.score,
                            "dense_score": hit.dense_score, "text": text})  # fmt: skip
    result.sources = sources
    yield {"type": "sources", "sources": sources}
    prompt, stops = build_prompt(generator, asked, sources)
    result.prompt = prompt
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, stop=stops)
    pieces, first, decode_start = [], None, time.perf_counter()
    repeating = _RepetitionGuard()
    for piece in generator.stream(prompt, gen, lambda: should_stop() or repeating.seen):
        if first is None:
            first = time.perf_counter()
            result.timings["ttft_ms"] = round((first - started) * 1000, 1)
        pieces.append(piece)
        repeating.feed(piece)
        yield {"type": "token", "text": piece}
    result.stopped = should_stop()
    end = time.perf_counter()
    raw = "".join(pieces).strip()
    new_tokens = generator.count_tokens(raw) if raw else 0
    result.timings["new_tokens"] = new_tokens
    result.timings["tokens_per_s"] = round(new_tokens / (end - (first or decode_start)), 1) if new_tokens > 1 else 0.0
    if repeating.seen:
        raw = _drop_repeats(raw)
    if new_tokens >= config.max_new_tokens and not raw.endswith((".", "!", "?")):
        # Cut off by the token limit: drop the unfinished last sentence rather than show half a claim.
        cut = max(raw.rfind(". "), raw.rfind("! "), raw.rfind("? "))
        raw = raw[: cut + 1] if cut > 0 else raw
    text = raw or "The model returned no answer."
    if sources:
        checked = verify_citations(text, sources, embedder.encode)
        text = checked.answer
        result.citations = [c.to_dict() for c in checked.citations]
        result.unsupported_sentences = checked.unsupported_sentences
        result.dropped_labels = checked.dropped_labels
    context = {"passages": [s["text"] for s in sources], "unsupported_sentences": result.unsupported_sentences}
    out_verdict = screen_output(text, context, ruleset)
    result.safety["output"] = out_verdict.to_dict()
    if out_verdict.action == "block":
        result.answer, result.blocked = " ".join(out_verdict.messages), True
    else:
        result.answer = out_verdict.redacted
    result.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    yield {"type": "final", "answer": result}


def _drop_repeats(text: str) -> str:
    kept, seen = [], set()
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        key = " ".join(sentence.lower().split())
        if key in seen:
            break
        seen.add(key)
        kept.append(sentence)
    return " ".join(kept).strip()


class _RepetitionGuard:
    """Notices when a small model starts repeating a sentence it already wrote (greedy decoding loops)."""

    def __init__(self) -> None:
        self.text, self.sentences, self.seen = "", set(), False

    def feed(self, piece: str) -> None:
        self.text += piece
        *done, self.text = re.split(r"(?<=[.!?])\s+", self.text)
        for sentence in done:
            key = " ".join(sentence.lower().split())
            if len(key) > 12 and key in self.sentences:
                self.seen = True
            self.sentences.add(key)


def ask(question: str, config: ChatConfig, generator, embedder=None, index_state=None, rules=None) -> Answer:
    """Answer one question to the end (no streaming); see :func:`answer_stream`.

    Returns:
        The answer.
    """
    final = None
    for event in answer_stream(question, config, generator, embedder, index_state, rules=rules):
        if event["type"] == "final":
            final = event["answer"]
    return final
