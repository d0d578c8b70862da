"""ChatPage: cited chat over an index, streamed, with checked citations, source cards and safety verdicts."""

import json
from contextlib import closing

import streamlit as st

from components import resources, state, widgets
from components.base import Page
from components.widgets import config_number, config_slider, escape_md
from core.chat import store as chats
from core.chat import turn as turns
from core.config import ChatConfig, ConfigError
from core.errors import WorkbenchError
from core.finetune import runs
from core.models import registry
from core.rag import index as rag_index
from core.rag import manage, opening

UNGROUNDED = "(none: plain chat, not grounded)"
NO_ADAPTER = ""  # the adapter selectbox's "none"


class ChatPage(Page):
    title = "Chat"
    icon = ":material/forum:"
    url_path = "chat"

    def render(self) -> None:
        st.title("Chat")
        conversation = self._conversation_bar()
        config = self._settings(conversation)
        if config.index is None:
            st.warning("Plain chat: answers are **not grounded** in any documents and carry no citations.")
        # A Stop click reruns the page while the interrupted turn is still storing its answer: wait for it.
        turns.wait_for_turn(conversation.id)
        asked = None
        for message in chats.list_messages(conversation.id):
            self._show_message(message, config, asked)
            asked = message.content if message.role == "user" else None
        question = st.chat_input("Ask about the documents…", key="chat.input")
        if question is not None:
            self._turn(conversation, config, question)

    def _conversation_bar(self) -> chats.Conversation:
        conversations = chats.list_conversations()
        if not conversations:
            conversations = [chats.create_conversation(settings=ChatConfig().to_dict())]
        ids = [c.id for c in conversations]
        wanted = st.session_state.pop(state.CHAT_NEXT, None)  # set by "New" before the rerun
        if wanted in ids:
            st.session_state[state.CHAT_CONVERSATION] = wanted
        if st.session_state.get(state.CHAT_CONVERSATION) not in ids:
            st.session_state[state.CHAT_CONVERSATION] = ids[0]
        titles = {c.id: c.title for c in conversations}
        left, new, more = st.columns([6, 1, 1], vertical_alignment="bottom")
        current = left.selectbox("Conversation", ids, format_func=titles.get, key=state.CHAT_CONVERSATION)
        if new.button("New", icon=":material/add:", help="Start a new conversation"):
            previous = chats.get_conversation(current).settings
            st.session_state[state.CHAT_NEXT] = chats.create_conversation(settings=previous).id
            st.rerun()
        conversation = chats.get_conversation(current)
        with more.popover("More", icon=":material/more_horiz:"):
            title = st.text_input("Title", conversation.title, key=f"chat.title.{conversation.id}")
            if st.button("Rename", key="chat.rename") and title.strip() != conversation.title:
                try:
                    chats.rename_conversation(conversation.id, title)
                except WorkbenchError as exc:
                    st.error(str(exc))
                else:
                    st.rerun()
            st.download_button("Export Markdown", chats.export_markdown(conversation.id),
                               file_name=f"chat-{conversation.id}.md", mime="text/markdown")  # fmt: skip
            exported = json.dumps(chats.export_json(conversation.id), indent=2, ensure_ascii=False)
            st.download_button(
                "Export JSON", exported, file_name=f"chat-{conversation.id}.json", mime="application/json"
            )
            if st.button("Delete conversation", icon=":material/delete:", key="chat.delete"):
                chats.delete_conversation(conversation.id)
                st.rerun()
        return conversation

    def _settings(self, conversation: chats.Conversation) -> ChatConfig:
        saved = {**ChatConfig().to_dict(), **conversation.settings}
        formats = {
            m.name: m.format
            for m in registry.list_models()
            if m.role in ("chat", "finetune_base") and m.status == "ready"
        }
        models = list(formats)
        adapters = {run.adapter: f"{run.name} · {run.id}" for run in runs.list_adapters()}
        if saved.get("adapter") and saved["adapter"] not in adapters:  # a deleted run, or a folder typed earlier
            adapters[saved["adapter"]] = f"{saved['adapter']} (not a finished run here)"
        adapter_options = [NO_ADAPTER, *adapters]
        indices = [*rag_index.list_names(), UNGROUNDED]
        h = ChatConfig.help
        with st.expander("Settings: " + f"{saved['model']} · {saved['index'] or 'no index'} · top-{saved['top_k']}"):
            cols = st.columns(2)
            model = cols[0].selectbox("Model", models, index=models.index(saved["model"]) if saved["model"] in models
                                      else 0, help=h("model"), key=f"chat.model.{conversation.id}")  # fmt: skip
            chosen = saved["index"] if saved["index"] in indices else (indices[0] if saved["index"] else UNGROUNDED)
            index = cols[1].selectbox("Index", indices, index=indices.index(chosen), help=h("index"),
                                      key=f"chat.index.{conversation.id}")  # fmt: skip
            cols = st.columns(3)
            top_k = config_slider(cols[0], ChatConfig, "top_k", "Top k", int(saved["top_k"]), high=10,
                                  key=f"chat.k.{conversation.id}")  # fmt: skip
            temperature = config_slider(cols[1], ChatConfig, "temperature", "Temperature", float(saved["temperature"]),
                                        high=1.5, key=f"chat.t.{conversation.id}")  # fmt: skip
            max_new = config_number(cols[2], ChatConfig, "max_new_tokens", "Max new tokens",
                                    int(saved["max_new_tokens"]), key=f"chat.n.{conversation.id}")  # fmt: skip
            hf = formats.get(model) == "hf"  # llama.cpp (GGUF) models take no PEFT adapter
            adapter = st.selectbox("LoRA adapter (transformers models only)", adapter_options,
                                   index=adapter_options.index(saved.get("adapter") or NO_ADAPTER),
                                   format_func=lambda a: adapters.get(a, "none"), help=h("adapter"), disabled=not hf,
                                   key=f"chat.adapter.{conversation.id}")  # fmt: skip
        try:
            config = ChatConfig(model=model or saved["model"], index=None if index == UNGROUNDED else index,
                                top_k=top_k, temperature=temperature, max_new_tokens=int(max_new),
                                min_relevance=saved["min_relevance"],
                                adapter=adapter if hf and adapter != NO_ADAPTER else None)  # fmt: skip
        except ConfigError as exc:
            st.error(str(exc))
            st.stop()
        if config.to_dict() != conversation.settings:
            chats.update_settings(conversation.id, config.to_dict())
        return config

    def _turn(self, conversation: chats.Conversation, config: ChatConfig, question: str) -> None:
        try:
            generator = resources.generator(config.model, config.adapter)
            index = None
            if config.index is not None:
                manifest = rag_index.read_manifest(config.index)
                index = opening.open_index(config.index, embedder=resources.embedder(manifest["embedding"]["model"]),
                                           state=resources.index_state(config.index, manifest["generation"]),
                                           warm=False)  # fmt: skip
        except WorkbenchError as exc:
            st.error(f"{exc} — the conversation is kept; choose another model or index in Settings.")
            return
        user = st.chat_message("user")
        with st.chat_message("assistant"):
            st.button("Stop", icon=":material/stop_circle:", key="chat.stop", on_click=turns.stop_turn,
                      args=(conversation.id,), help="Stop generating; the part shown so far is kept")  # fmt: skip
            box, shown = st.empty(), ""
            turn = turns.run_turn(
                question,
                config,
                generator,
                index,
                conversation.id,
                rules=resources.safety_rules(),
                layers=resources.safety_layers(),
            )
            try:
                # closing(): a Stop click or leaving the page interrupts this loop; the turn then stops the model
                # and stores what was shown, screened, as the stopped answer.
                with closing(turn) as events:
                    for event in events:
                        if event["type"] == "input_safety":
                            user.markdown(escape_md(event["verdict"]["redacted"][:2000]))
                            if event["verdict"].get("banner"):
                                st.error(event["verdict"]["banner"], icon=":material/emergency:")
                        elif event["type"] in ("token", "replace"):
                            shown = shown + event["text"] if event["type"] == "token" else event["text"]
                            box.markdown(escape_md(shown) + " ▌")
            except WorkbenchError as exc:
                st.error(str(exc))
                return
        st.rerun()

    def _show_message(self, message: chats.Message, config: ChatConfig, asked: str | None = None) -> None:
        with st.chat_message(message.role):
            safety = message.safety or {}
            banner = (safety.get("input") or {}).get("banner")
            if banner:
                st.error(banner, icon=":material/emergency:")
            st.markdown(escape_md(message.content))
            if message.role != "assistant":
                return
            meta = message.meta
            if meta.get("unsupported_sentences"):
                st.warning(
                    "Not supported by any source: " + " · ".join(f"“{s}”" for s in meta["unsupported_sentences"])
                )
            if meta.get("dropped_labels"):
                st.caption(f"Removed citation labels that matched no source: {', '.join(meta['dropped_labels'])}")
            for note in (safety.get("output") or {}).get("messages") or []:
                st.info(note)
            if message.sources:
                self._source_cards(message, meta.get("index"))
            timings = meta.get("timings") or {}
            if timings:
                parts = [meta.get("model", "")]
                if "retrieval_ms" in timings:
                    parts.append(f"retrieval {timings['retrieval_ms']:.0f} ms")
                if "ttft_ms" in timings:
                    parts.append(f"first token {timings['ttft_ms'] / 1000:.1f} s")
                if timings.get("tokens_per_s"):
                    parts.append(f"{timings['tokens_per_s']:.0f} tokens/s")
                st.caption(" · ".join(p for p in parts if p))
            disclaimer = (safety.get("output") or {}).get("disclaimer")
            if disclaimer:
                st.caption(disclaimer)
            if asked and safety.get("input"):
                widgets.verdict_feedback(asked, safety["input"], key=f"chat.feedback.{message.id}")

    def _source_cards(self, message: chats.Message, index_name: str | None) -> None:
        cited = {}
        for citation in message.citations:
            cited.setdefault(citation["label"], []).append(citation)
        with st.expander(f"Sources ({len(message.sources)}, {len(cited)} cited)", expanded=True):
            for source in message.sources:
                citations = cited.get(source["label"], [])
                where = f"page {source['page']}" if source.get("page") else (
                    f"record {source['record']}" if source.get("record") else "")  # fmt: skip
                how = ""
                if citations:
                    best = max(citations, key=lambda c: c["support"])
                    kind = "attributed" if all(c["attributed"] for c in citations) else "cited"
                    how = f" · {kind}, support {best['support']:.2f}"
                with st.container(border=True, key=f"source-{message.id}-{source['label']}"):
                    parts = [f"**[{source['label']}] {escape_md(source['source'])}**", where,
                             f"score {source['score']:.3f}{how}"]  # fmt: skip
                    st.markdown(" · ".join(p for p in parts if p))
                    if source.get("flagged"):
                        st.warning("This passage carried instructions aimed at the model; they were removed before "
                                   "the model read it: " + " ".join(escape_md(f) for f in source.get("flags") or []),
                                   icon=":material/gpp_maybe:")  # fmt: skip
                    text = source["text"]
                    if citations:
                        best = max(citations, key=lambda c: c["support"])
                        a, b = best["span_start"], best["span_end"]
                        st.markdown(escape_md(text[:a]) + " :orange-background[" + escape_md(text[a:b]) + "] "
                                    + escape_md(text[b:]))  # fmt: skip
                    else:
                        st.caption(escape_md(text))
                    if index_name and st.toggle("Open in context", key=f"ctx-{message.id}-{source['label']}"):
                        self._context(index_name, source)

    def _context(self, index_name: str, source: dict) -> None:
        try:
            manifest = rag_index.read_manifest(index_name)
            loaded = resources.index_state(index_name, manifest["generation"])
            text = manage.document_text(loaded, source["source"], source.get("page"), source.get("record"))
        except WorkbenchError as exc:
            st.caption(f"Context unavailable: {exc}")
            return
        a, b = source["start"], source["end"]
        st.markdown(escape_md(text[max(0, a - 2000) : a]) + " :blue-background[" + escape_md(text[a:b]) + "] "
                    + escape_md(text[b : b + 2000]))  # fmt: skip
