"""One chat turn: screen the question, retrieve numbered sources, generate (streaming), verify citations, screen.

:func:`answer_stream` yields events as the turn advances (what the Chat page draws); :func:`ask` runs it to the
end and returns the :class:`Answer` that ``workbench ask --json`` prints.
"""

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from core.chat.citations import verify_citations
from core.config import ChatConfig
from core.errors import WorkbenchError
from core.llm.backends import GenerationConfig
from core.rag.opening import check_embedder
from core.rag.retrieve import retrieve
from core.safety import RuleStore, screen_input, screen_output
from core.safety.learned import LayerStore, LearnedLayerError
from core.safety.normalize import fold

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
# Where a streamed sentence ends: a stop mark followed by white space, or a line break ("1.5 mg" does not end one).
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


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
    # retrieval_ms, first_token_ms (first generated piece), ttft_ms (first piece shown, after screening),
    # tokens_per_s, total_ms, new_tokens
    timings: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)  # [{"label": "S1", "chunk_id", "source", "page", ...}]
    model: str = ""
    index: str | None = None
    grounded: bool = True  # False: plain chat without an index
    covered: bool = True  # False: retrieval found nothing relevant, the model was not asked
    blocked: bool = False  # True: the safety layer refused the question or the answer
    stopped: bool = False  # True: the user stopped generation
    flagged_passages: list[str] = field(default_factory=list)  # labels of sources that carried injected instructions
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
    stop: threading.Event | None = None,
    rules: RuleStore | None = None,
    layers: LayerStore | None = None,
) -> Iterator[dict]:
    """Run one turn, yielding events: ``input_safety``, ``sources``, shown text, then ``final``.

    Text is shown only after it passed the output screen: the stream is held back to whole sentences, each new
    prefix is screened, and a ``token`` event carries what may be appended to the screen. When screening masks
    something already shown differently, or blocks the answer, a ``replace`` event carries the whole text to show
    instead (a blocked answer stops generating). ``final`` carries the screened, citation-checked answer.

    Args:
        question: What the user asked.
        config: Model, index and decoding settings.
        generator: The loaded model (see ``core.llm.backends.load_generator``).
        embedder: The index's embedding model (needed when ``config.index`` is set).
        index_state: The loaded index (needed when ``config.index`` is set).
        stop: Set it to stop generating early; the partial answer is screened, checked and kept.
        rules: A long-lived rule store (reloads only when a rule file changes); a fresh one when omitted.
        layers: The learned safety layer's store; the process-wide one when omitted.

    Yields:
        Event dicts; the last has ``type == "final"`` and ``answer`` (an :class:`Answer`).

    Raises:
        ChatError: For an empty or overlong question, or an index without its embedder.
        RagIndexError: If the embedder is not the model the index was built with.
    """
    started = time.perf_counter()
    question = check_question(question)
    result = Answer(answer="", model=generator.name, index=config.index, grounded=config.index is not None)
    ruleset = (rules or RuleStore()).current()
    layer, layer_errors = _learned_layer(layers)
    # The learned layer embeds the (redacted) question with the index's model when it is the same model; that
    # vector is reused for retrieval below, so screening adds no second encode.
    verdict = screen_input(question, ruleset, learned=layer, embedder=embedder)
    if layer_errors:
        verdict = replace(verdict, learned_errors=verdict.learned_errors + layer_errors)
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
        check_embedder(index_state, embedder)
        t0 = time.perf_counter()
        reuse = (
            verdict.embedding is not None
            and layer.accepts(embedder)
            and verdict.learned.embedded_text == fold(asked).text
        )
        vector = verdict.embedding if reuse else embedder.encode([asked])[0]
        hits = retrieve(index_state, asked, vector, k=config.top_k)
        result.timings["retrieval_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        if not hits or max(h.dense_score or 0 for h in hits) < config.min_relevance:
            result.answer, result.covered = NOT_COVERED, False
            result.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
            yield {"type": "final", "answer": result}
            return
        # Retrieved text is screened too: a passage carrying injected instructions is cleaned before the model
        # reads it, flagged on its source card and counted in the answer.
        passages = screen_output("", {"passages": [h.text for h in hits]}, ruleset, log=False)
        result.safety["passages"] = passages.to_dict()
        cleaned = list(passages.redacted_passages) or [h.text for h in hits]
        for n, (hit, text) in enumerate(zip(hits, cleaned, strict=True), start=1):
            flagged = n - 1 in passages.flagged_passages
            sources.append({"label": f"S{n}", "chunk_id": hit.chunk_id, "source": hit.source, "page": hit.page,
                            "record": hit.record, "start": hit.start, "end": hit.end, "score": hit.score,
                            "dense_score": hit.dense_score, "text": text, "flagged": flagged,
                            "flags": [h.message for h in passages.hits if h.passage == n - 1]})  # fmt: skip
        result.flagged_passages = [s["label"] for s in sources if s["flagged"]]
    result.sources = sources
    yield {"type": "sources", "sources": sources}
    prompt, stops = build_prompt(generator, asked, sources)
    result.prompt = prompt
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, stop=stops)
    halt = threading.Event()  # ends generation: the user's stop, a repeating model, or a blocked answer
    shown = ShownText(ruleset)
    pieces, first, decode_start = [], None, time.perf_counter()
    repeating = RepetitionGuard()
    stream = generator.stream(prompt, gen, halt)
    try:
        for piece in stream:
            if first is None:
                first = time.perf_counter()
                result.timings["first_token_ms"] = round((first - started) * 1000, 1)
            pieces.append(piece)
            repeating.feed(piece)
            for event in shown.feed(piece):
                # Time to first token is the time to the first piece the user sees (screened, whole sentences).
                result.timings.setdefault("ttft_ms", round((time.perf_counter() - started) * 1000, 1))
                yield event
            if shown.blocked is not None or repeating.seen or (stop is not None and stop.is_set()):
                halt.set()
                break
        else:
            for event in shown.flush():  # the last sentence needs no following space to be complete
                result.timings.setdefault("ttft_ms", round((time.perf_counter() - started) * 1000, 1))
                yield event
    finally:
        stream.close()  # the model is idle again before anything else happens (or the caller abandons us)
    result.stopped = stop is not None and stop.is_set()
    end = time.perf_counter()
    raw = "".join(pieces).strip()
    new_tokens = generator.count_tokens(raw) if raw else 0
    result.timings["new_tokens"] = new_tokens
    result.timings["tokens_per_s"] = round(new_tokens / (end - (first or decode_start)), 1) if new_tokens > 1 else 0.0
    if shown.blocked is not None:
        raw = shown.checked_text  # the prefix that blocked; the rest was never generated
    elif result.stopped and shown.checked_text.strip():
        raw = shown.checked_text.strip()  # a stopped answer keeps what was shown, not a sentence cut in half
    if repeating.seen:
        raw = _drop_repeats(raw)
    if new_tokens >= config.max_new_tokens and not raw.endswith((".", "!", "?")):
        # Cut off by the token limit: drop the unfinished last sentence rather than show half a claim.
        cut = max(raw.rfind(". "), raw.rfind("! "), raw.rfind("? "))
        raw = raw[: cut + 1] if cut > 0 else raw
    text = raw or "The model returned no answer."
    if sources and shown.blocked is None:
        checked = verify_citations(text, sources, embedder.encode)
        text = checked.answer
        result.citations = [c.to_dict() for c in checked.citations]
        result.unsupported_sentences = checked.unsupported_sentences
        result.dropped_labels = checked.dropped_labels
    context = {"passages": [s["text"] for s in sources], "unsupported_sentences": result.unsupported_sentences}
    out_verdict = screen_output(text, context, ruleset)
    result.safety["output"] = out_verdict.to_dict()
    if result.flagged_passages:
        result.safety["output"]["messages"].append(
            f"Source{'s' if len(result.flagged_passages) > 1 else ''} {', '.join(result.flagged_passages)} "
            "contained instructions aimed at the model; they were removed before the model read them."
        )
    if out_verdict.action == "block":
        result.answer, result.blocked = " ".join(out_verdict.messages), True
        result.citations, result.unsupported_sentences = [], []
    else:
        result.answer = out_verdict.redacted
    result.timings.setdefault("ttft_ms", round((time.perf_counter() - started) * 1000, 1))  # shown only now
    result.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    yield {"type": "final", "answer": result}


_LAYERS = LayerStore()


def _learned_layer(layers: LayerStore | None):
    """The learned layer in force and any problem choosing it; (None, errors) when none can be read at all."""
    store = layers or _LAYERS
    try:
        layer = store.current()
    except LearnedLayerError as exc:
        return None, (str(exc),)
    return layer, store.errors


def check_question(question: str) -> str:
    """Return the question stripped, or refuse it.

    Raises:
        ChatError: If it is empty or longer than ``MAX_QUESTION_CHARS``.
    """
    question = (question or "").strip()
    if not question:
        raise ChatError("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ChatError(f"The question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}.")
    return question


class ShownText:
    """What the user may see of an answer while it streams: whole sentences only, each prefix screened first.

    A sentence is held back until it ends, so a span the output screen blocks or masks never reaches the screen
    half-written. ``feed`` returns the events that update the screen: ``token`` (text to append) or ``replace``
    (the whole text to show instead, when masking changed what was shown or the answer is blocked).
    """

    def __init__(self, ruleset) -> None:
        self.ruleset = ruleset
        self.raw = ""
        self.shown = ""
        self.checked_text = ""
        self.blocked = None  # the verdict that blocked the answer

    def feed(self, piece: str) -> list[dict]:
        """Take the next generated piece; return the screen updates it allows."""
        self.raw += piece
        ends = [m.end() for m in _SENTENCE_END.finditer(self.raw)]
        return self._show(ends[-1]) if ends else []

    def flush(self) -> list[dict]:
        """The stream ended: the text after the last sentence end is complete too."""
        return self._show(len(self.raw.rstrip()))

    def _show(self, end: int) -> list[dict]:
        if self.blocked is not None or end <= len(self.checked_text):
            return []
        self.checked_text = self.raw[:end]
        verdict = screen_output(self.checked_text, None, self.ruleset, log=False)
        if verdict.action == "block":
            self.blocked = verdict
            self.shown = " ".join(verdict.messages)
            return [{"type": "replace", "text": self.shown, "blocked": True}]
        display = verdict.redacted.lstrip()
        if display.startswith(self.shown):
            delta, self.shown = display[len(self.shown) :], display
            return [{"type": "token", "text": delta}] if delta else []
        self.shown = display
        return [{"type": "replace", "text": display}]


def _drop_repeats(text: str) -> str:
    kept, seen = [], set()
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        key = " ".join(sentence.lower().split())
        if key in seen:
            break
        seen.add(key)
        kept.append(sentence)
    return " ".join(kept).strip()


class RepetitionGuard:
    """Notices when a small model starts repeating a sentence it already wrote (greedy decoding loops)."""

    def __init__(self) -> None:
        self.text, self.sentences, self.seen = "", set(), False

    def feed(self, piece: str) -> None:
        """Take the next generated piece; ``seen`` turns true once a finished sentence repeats an earlier one."""
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
