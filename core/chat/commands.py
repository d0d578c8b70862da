"""``workbench ask``: one grounded question from the command line."""

import argparse
from pathlib import Path

from core.chat.answer import ChatError, answer_stream
from core.cliutil import add_command, emit, out
from core.config import ChatConfig
from core.llm.backends import load_generator
from core.rag import index as store
from core.rag.embed import Embedder


def _ask(args: argparse.Namespace) -> int:
    config = ChatConfig(
        model=args.model,
        index=None if args.no_index else args.index,
        top_k=args.k,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        adapter=args.adapter,
    )
    if not args.question.strip():
        raise ChatError("Type a question first.")
    state = embedder = None
    if config.index is not None:
        state = store.load(config.index)  # a deleted index fails here, before a model is loaded
        embedder = Embedder(state.manifest["embedding"]["model"])
        embedder.encode(["warm-up"])  # load the model now, so retrieval_ms measures retrieval, not loading
    generator = load_generator(config.model, adapter=Path(config.adapter) if config.adapter else None)
    final = None
    for event in answer_stream(args.question, config, generator, embedder, state):
        if event["type"] == "token" and not args.json:
            out(event["text"], end="")
        elif event["type"] == "final":
            final = event["answer"]
    payload = final.to_dict()
    payload.pop("prompt")
    if args.json:
        emit(args, payload, "")
        return 0
    out("")
    if final.blocked or not final.covered:
        out(final.answer)
    banner = (final.safety.get("input") or {}).get("banner")
    if banner:
        out(f"\n!! {banner}")
    for source in final.sources:
        cited = [c for c in final.citations if c["label"] == source["label"]]
        mark = " (cited)" if any(not c["attributed"] for c in cited) else (" (attributed)" if cited else "")
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
    p.add_argument("--index", default="demo", help=h("index"))
    p.add_argument("--no-index", action="store_true", help="plain, ungrounded chat")
    p.add_argument("--model", default=ChatConfig().model, help=h("model"))
    p.add_argument("-k", type=int, default=5, help=h("top_k"))
    p.add_argument("--temperature", type=float, default=0.0, help=h("temperature"))
    p.add_argument("--max-new-tokens", type=int, default=192, help=h("max_new_tokens"))
    p.add_argument("--adapter", help=h("adapter"))
