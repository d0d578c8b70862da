"""``workbench ask``: one grounded question from the command line."""

import argparse
from contextlib import closing
from pathlib import Path

from core.chat.answer import check_question
from core.chat.turn import run_turn
from core.cliutil import add_command, config_option, emit, out
from core.config import ChatConfig
from core.llm.backends import load_generator
from core.rag.opening import open_index


def _ask(args: argparse.Namespace) -> int:
    config = ChatConfig(
        model=args.model,
        index=None if args.no_index else args.index,
        top_k=args.top_k,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        adapter=args.adapter,
    )
    check_question(args.question)  # an empty question fails before anything is loaded
    # The index next: a deleted index or a mismatched embedding model fails before a chat model is loaded.
    index = open_index(config.index) if config.index is not None else None
    generator = load_generator(config.model, adapter=Path(config.adapter) if config.adapter else None)
    final, shown = None, ""
    # closing(): Ctrl-C stops the model at once (and stores what was shown when --conversation is given).
    with closing(run_turn(args.question, config, generator, index, conversation_id=args.conversation)) as events:
        for event in events:
            if event["type"] == "token":
                shown += event["text"]
                if not args.json:
                    out(event["text"], end="")
            elif event["type"] == "replace":
                shown = event["text"]
                if not args.json:
                    out("\n[the safety layer replaced the text shown so far]\n" + shown, end="")
            elif event["type"] == "final":
                final = event["answer"]
    payload = final.to_dict()
    payload.pop("prompt")
    if args.json:
        emit(args, payload, "")
        return 0
    out("")
    if final.answer.strip() != shown.strip():  # blocked, not covered, or checked into a different final text
        out(("\n" if shown else "") + final.answer)
    banner = (final.safety.get("input") or {}).get("banner")
    if banner:
        out(f"\n!! {banner}")
    for source in final.sources:
        cited = [c for c in final.citations if c["label"] == source["label"]]
        mark = " (cited)" if any(not c["attributed"] for c in cited) else (" (attributed)" if cited else "")
        mark += " (flagged: carried instructions to the model, removed)" if source.get("flagged") else ""
        page = f", page {source['page']}" if source["page"] else ""
        out(f"[{source['label']}] {source['source']}{page}{mark}")
    if final.unsupported_sentences:
        out(f"Unsupported sentences: {len(final.unsupported_sentences)}")
    disclaimer = (final.safety.get("output") or {}).get("disclaimer")
    if disclaimer:
        out(f"\n{disclaimer}")
    return 0


def add_commands(groups: argparse._SubParsersAction) -> None:
    """Register ``ask`` on the top-level sub-parsers."""
    h = ChatConfig.help
    p = add_command(groups, "ask", _ask, "answer a question from an index, with checked citations")
    p.add_argument("question")
    p.add_argument("--index", default=ChatConfig().index, help=h("index"))
    p.add_argument("--no-index", action="store_true", help="plain, ungrounded chat")
    config_option(p, ChatConfig, "model")
    config_option(p, ChatConfig, "top_k", "-k")
    config_option(p, ChatConfig, "temperature")
    config_option(p, ChatConfig, "max_new_tokens")
    p.add_argument("--adapter", help=h("adapter"))
    p.add_argument("--conversation", metavar="ID", help="store the turn in this conversation (as the Chat page does)")
