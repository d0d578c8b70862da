"""One chat turn as the page, ``workbench ask`` and the evaluation run it: answer, stream, and store what is kept.

:func:`run_turn` wraps :func:`core.chat.answer.answer_stream` and owns persistence: the question is stored as the
input screen masked it (personal data never reaches the database), the answer as the output screen left it, and an
answer that is abandoned half-way (the Stop button, leaving the page, Ctrl-C) is stored from what had been shown,
screened again, and marked stopped. The caller only draws events.
"""

import logging
import threading
from collections.abc import Iterator

from core.chat import store as chats
from core.chat.answer import Answer, answer_stream, check_question
from core.config import ChatConfig
from core.errors import WorkbenchError
from core.rag.opening import OpenIndex
from core.safety import RuleStore, screen_output
from core.safety.learned import LayerStore

logger = logging.getLogger(__name__)

STOPPED_MARK = " [stopped]"

# Turns in progress in this process, by conversation id: (stop event, done event). A browser's Stop click reaches
# the app as a new script run in another thread while the interrupted one is still winding down; this is how the
# new run stops the old turn at once and waits until its answer is stored before it lists the messages.
_ACTIVE: dict[str, tuple[threading.Event, threading.Event]] = {}
_ACTIVE_LOCK = threading.Lock()


def stop_turn(conversation_id: str) -> bool:
    """Stop the turn in progress in a conversation (in this process), if there is one.

    Returns:
        Whether a turn was running.
    """
    with _ACTIVE_LOCK:
        active = _ACTIVE.get(conversation_id)
    if active is None:
        return False
    active[0].set()
    return True


def wait_for_turn(conversation_id: str, timeout_s: float = 30.0) -> bool:
    """Wait until the turn in progress in a conversation (if any) has stored its answer.

    Returns:
        True when no turn is running any more; False if one still runs after ``timeout_s``.
    """
    with _ACTIVE_LOCK:
        active = _ACTIVE.get(conversation_id)
    return active is None or active[1].wait(timeout_s)


KEPT_META = ("timings", "model", "index", "grounded", "covered", "blocked", "stopped", "unsupported_sentences",
             "dropped_labels", "flagged_passages")  # fmt: skip


def run_turn(
    question: str,
    config: ChatConfig,
    generator,
    index: OpenIndex | None = None,
    conversation_id: str | None = None,
    stop: threading.Event | None = None,
    rules: RuleStore | None = None,
    layers: LayerStore | None = None,
) -> Iterator[dict]:
    """Run one turn and yield its events (see ``answer_stream``); store the question and answer when asked to.

    Close the iterator (``contextlib.closing``) when abandoning it early: generation stops at once, and the part
    that had been shown is stored as the answer, marked stopped.

    Args:
        question: What the user typed.
        config: The conversation's settings.
        generator: The loaded chat model.
        index: The opened index (``core.rag.opening.open_index``), or None for a plain chat.
        conversation_id: Where to store the turn; None stores nothing (``workbench ask`` without
            ``--conversation``, the evaluation).
        stop: Set it to stop generating; the partial answer is finished normally (checked, screened, stored).
        rules: The app's long-lived rule store.
        layers: The app's learned safety layer store (the process-wide one when omitted).

    Yields:
        The events of ``answer_stream``; the last is ``final``.

    Raises:
        ChatError: For an empty or overlong question (nothing is stored).
        WorkbenchError: From loading or generating; an "Error: ..." answer is stored after the question.
    """
    question = check_question(question)
    if conversation_id is not None:
        chats.get_conversation(conversation_id)  # a deleted conversation fails before the model runs
    rules = rules or RuleStore()
    embedder, state = (index.embedder, index.state) if index is not None else (None, None)
    stop = stop or threading.Event()
    done = threading.Event()
    if conversation_id is not None:
        with _ACTIVE_LOCK:
            _ACTIVE[conversation_id] = (stop, done)
    events = answer_stream(question, config, generator, embedder, state, stop=stop, rules=rules, layers=layers)
    asked, shown, sources, final, blocked = None, "", [], None, False
    try:
        for event in events:
            kind = event["type"]
            if kind == "input_safety":
                asked = event["verdict"]["redacted"]
                if conversation_id is not None:
                    chats.add_message(conversation_id, "user", asked, meta={"masked": asked != question})
            elif kind == "sources":
                sources = event["sources"]
            elif kind == "token":
                shown += event["text"]
            elif kind == "replace":
                shown, blocked = event["text"], bool(event.get("blocked"))
            elif kind == "final":
                final = event["answer"]
            yield event
    except GeneratorExit:
        events.close()  # stops generation now (the backend joins its worker before letting go of the model)
        if conversation_id is not None and asked is not None:
            _store_partial(conversation_id, config, shown, sources, rules, blocked)
        raise
    except WorkbenchError as exc:
        if conversation_id is not None and asked is not None:
            meta = {"error": True, "model": config.model}
            chats.add_message(conversation_id, "assistant", f"Error: {exc}", meta=meta)
        raise
    else:
        if conversation_id is not None and final is not None:
            store_answer(conversation_id, final)
    finally:
        done.set()
        if conversation_id is not None:
            with _ACTIVE_LOCK:
                if _ACTIVE.get(conversation_id) == (stop, done):
                    del _ACTIVE[conversation_id]


def store_answer(conversation_id: str, answer: Answer) -> chats.Message:
    """Store a finished answer with its sources, citations, safety verdicts and timings.

    Returns:
        The stored message.
    """
    record = answer.to_dict()
    content = answer.answer + (STOPPED_MARK if answer.stopped and not answer.blocked else "")
    return chats.add_message(conversation_id, "assistant", content, sources=answer.sources, citations=answer.citations,
                             safety=answer.safety, meta={k: record[k] for k in KEPT_META})  # fmt: skip


def _store_partial(
    conversation_id: str, config: ChatConfig, shown: str, sources: list[dict], rules, blocked: bool
) -> None:
    # What was shown passed the streaming screen sentence by sentence; the whole is screened once more (and
    # audited), so a stopped answer is stored exactly as any other answer would be.
    text = shown.strip()
    verdict = screen_output(text, {"passages": [s["text"] for s in sources]}, rules.current())
    if blocked:  # the screen had already replaced the answer with its refusal
        content = text
    elif verdict.action == "block":
        content, blocked = " ".join(verdict.messages), True
    else:
        content, blocked = verdict.redacted + STOPPED_MARK, False
    meta = {"stopped": True, "blocked": blocked, "model": config.model, "index": config.index,
            "grounded": config.index is not None}  # fmt: skip
    safety = {"output": verdict.to_dict()}
    chats.add_message(conversation_id, "assistant", content.strip(), sources=sources, safety=safety, meta=meta)
    logger.info("stored a stopped answer in conversation %s", conversation_id)
