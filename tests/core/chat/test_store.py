"""Conversation store: CRUD on real SQLite, exact round-trips of sources/citations, auto titles, exports, errors."""

import json

import pytest

from core import db
from core.chat import store
from core.chat.store import ChatStoreError
from core.errors import WorkbenchError

SETTINGS = {"model": "gemma3-270m-gguf", "index": "idx-1", "top_k": 5, "temperature": 0.2, "max_new_tokens": 512}
SOURCES = [
    {
        "label": "S1",
        "chunk_id": "doc-a:0003",
        "source": "guidelines/vertigo.pdf",
        "page": 4,
        "record": None,
        "start": 120,
        "end": 980,
        "score": 0.8125,
        "text": "Ménière's disease presents with episodic vertigo, fluctuating hearing loss and tinnitus. " * 5,
    },
    {
        "label": "S2",
        "chunk_id": "doc-b:0000",
        "source": "notes.txt",
        "page": None,
        "record": 7,
        "start": 0,
        "end": 40,
        "score": 0.5,
        "text": "Betahistine 16 mg\nthree times daily.",
    },
]
CITATIONS = [
    {
        "label": "S1",
        "chunk_id": "doc-a:0003",
        "source": "guidelines/vertigo.pdf",
        "page": 4,
        "support": 0.91,
        "attributed": False,
        "sentence": "Ménière's disease causes episodic vertigo.",
    },
    {
        "label": "S2",
        "chunk_id": "doc-b:0000",
        "source": "notes.txt",
        "page": None,
        "support": 0.64,
        "attributed": True,
        "sentence": "Betahistine is often used.",
    },
]
SAFETY = {"allowed": True, "action": "allow", "reasons": []}
META = {"model": "gemma3-270m-gguf", "timings_s": {"retrieve": 0.012, "generate": 1.5}, "dropped_labels": ["S9"]}


def answered_conversation():
    conversation = store.create_conversation(settings=SETTINGS)
    store.add_message(conversation.id, "user", "What is Ménière's disease?")
    store.add_message(
        conversation.id,
        "assistant",
        "Ménière's disease causes episodic vertigo [S1]. Betahistine is often used [S2].",
        sources=SOURCES,
        citations=CITATIONS,
        safety=SAFETY,
        meta=META,
    )
    return store.get_conversation(conversation.id)


def test_create_and_get_a_conversation():
    created = store.create_conversation(settings=SETTINGS)
    assert created.title == store.DEFAULT_TITLE == "New chat"
    assert len(created.id) == 26 and created.created_at == created.updated_at
    assert store.get_conversation(created.id) == created
    assert store.get_conversation(created.id).settings == SETTINGS
    assert store.create_conversation().settings == {}


def test_list_puts_the_most_recently_active_first_and_honours_limit():
    first = store.create_conversation("First")
    second = store.create_conversation("Second")
    third = store.create_conversation("Third")
    assert [c.title for c in store.list_conversations()] == ["Third", "Second", "First"]
    store.add_message(first.id, "user", "hello again")
    assert [c.id for c in store.list_conversations()] == [first.id, third.id, second.id]
    assert [c.id for c in store.list_conversations(limit=2)] == [first.id, third.id]
    assert store.get_conversation(first.id).updated_at > first.updated_at


def test_rename_strips_and_rejects_empty_or_long_titles():
    conversation = store.create_conversation()
    renamed = store.rename_conversation(conversation.id, "  Vertigo   workup \n")
    assert renamed.title == "Vertigo workup" == store.get_conversation(conversation.id).title
    for bad in ("", "   \n\t", "x" * 201):
        with pytest.raises(ChatStoreError):
            store.rename_conversation(conversation.id, bad)
    assert store.rename_conversation(conversation.id, "y" * 200).title == "y" * 200
    with pytest.raises(ChatStoreError):
        store.create_conversation(title=" ")


def test_update_settings_replaces_the_dict():
    conversation = store.create_conversation(settings=SETTINGS)
    updated = store.update_settings(conversation.id, {"model": "other", "top_k": 3})
    assert updated.settings == {"model": "other", "top_k": 3} == store.get_conversation(conversation.id).settings
    with pytest.raises(ChatStoreError):
        store.update_settings(conversation.id, ["not", "a", "dict"])
    with pytest.raises(ChatStoreError, match="JSON"):
        store.update_settings(conversation.id, {"bad": object()})


def test_delete_removes_the_conversation_and_its_messages():
    kept = answered_conversation()
    gone = answered_conversation()
    store.delete_conversation(gone.id)
    with pytest.raises(ChatStoreError, match="No conversation"):
        store.get_conversation(gone.id)
    with pytest.raises(ChatStoreError):
        store.list_messages(gone.id)
    with db.connect() as conn:
        orphans = conn.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (gone.id,)).fetchone()[0]
    assert orphans == 0
    assert [c.id for c in store.list_conversations()] == [kept.id]
    assert len(store.list_messages(kept.id)) == 2
    with pytest.raises(ChatStoreError):
        store.delete_conversation(gone.id)


def test_messages_round_trip_sources_citations_safety_and_meta_exactly():
    conversation = answered_conversation()
    system = store.add_message(conversation.id, "system", "Answer from the sources only.")
    user, assistant, listed_system = store.list_messages(conversation.id)
    assert [m.role for m in (user, assistant, listed_system)] == ["user", "assistant", "system"]
    assert user.id < assistant.id < system.id == listed_system.id
    assert assistant.sources == SOURCES and assistant.citations == CITATIONS
    assert assistant.safety == SAFETY and assistant.meta == META
    assert user.sources == [] and user.citations == [] and user.safety is None and user.meta == {}
    assert system == listed_system
    assert assistant.to_dict()["sources"][1]["text"] == "Betahistine 16 mg\nthree times daily."


def test_add_message_returns_what_is_stored_not_the_callers_objects():
    conversation = store.create_conversation()
    sources = [dict(SOURCES[0])]
    message = store.add_message(conversation.id, "assistant", "x", sources=sources)
    sources[0]["label"] = "changed"
    assert message.sources == [SOURCES[0]] == store.list_messages(conversation.id)[0].sources


def test_first_user_message_titles_a_default_conversation():
    conversation = store.create_conversation()
    store.add_message(conversation.id, "system", "You are a careful assistant.")
    assert store.get_conversation(conversation.id).title == "New chat"
    store.add_message(conversation.id, "user", "  What causes   vertigo?\n")
    assert store.get_conversation(conversation.id).title == "What causes vertigo?"
    store.add_message(conversation.id, "user", "And tinnitus?")
    assert store.get_conversation(conversation.id).title == "What causes vertigo?"


def test_long_first_message_is_cut_on_a_word_boundary():
    text = "Which first-line treatments are recommended for adults with Ménière disease and frequent attacks?"
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", text)
    title = store.get_conversation(conversation.id).title
    assert title.endswith("…") and len(title) <= 61
    head = title[:-1]
    assert text.startswith(head) and text[len(head)] == " "
    assert title == "Which first-line treatments are recommended for adults with…"


def test_auto_title_hard_cuts_one_long_word_and_leaves_custom_titles():
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "a" * 150)
    assert store.get_conversation(conversation.id).title == "a" * 60 + "…"
    custom = store.create_conversation("My title")
    store.add_message(custom.id, "user", "Something else entirely")
    assert store.get_conversation(custom.id).title == "My title"


def test_bad_role_bad_payload_and_missing_conversation_are_refused():
    conversation = store.create_conversation()
    with pytest.raises(ChatStoreError, match="role"):
        store.add_message(conversation.id, "doctor", "hi")
    with pytest.raises(ChatStoreError):
        store.add_message(conversation.id, "assistant", "hi", sources={"S1": "not a list"})
    with pytest.raises(ChatStoreError):
        store.add_message(conversation.id, "assistant", "hi", meta={"when": object()})
    assert store.list_messages(conversation.id) == []
    with pytest.raises(ChatStoreError, match="No conversation") as info:
        store.add_message("01NOTANID0000000000000000", "user", "hi")
    assert isinstance(info.value, WorkbenchError)
    with pytest.raises(ChatStoreError, match="No conversation"):
        store.get_conversation("missing")
    for call in (store.export_json, store.export_markdown):
        with pytest.raises(ChatStoreError):
            call("missing")


def test_export_json_structure_round_trips_through_json():
    conversation = answered_conversation()
    data = store.export_json(conversation.id)
    assert set(data) == {"conversation", "messages", "exported_at", "disclaimer"}
    assert data["disclaimer"] == (
        "Generated by MedGemma Workbench, a research tool. Not medical advice; not a medical device."
    )
    assert data["conversation"]["id"] == conversation.id and data["conversation"]["settings"] == SETTINGS
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["sources"] == SOURCES and data["messages"][1]["citations"] == CITATIONS
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


def test_export_markdown_is_a_readable_transcript():
    conversation = answered_conversation()
    md = store.export_markdown(conversation.id)
    assert md.startswith(f"# {conversation.title}\n")
    assert store.DISCLAIMER in md
    assert "top\\_k=5" in md and "model=gemma3-270m-gguf" in md
    assert "**You:**" in md and "> What is Ménière's disease?" in md
    assert "**Assistant:**" in md and "> Ménière's disease causes episodic vertigo \\[S1\\]." in md
    s1 = next(line for line in md.splitlines() if line.startswith("- [S1] guidelines/vertigo.pdf, page 4 — “"))
    assert s1.endswith("…”") and len(s1) < 300
    assert "- [S2] notes.txt — “Betahistine 16 mg three times daily.”" in md
    attributed = [line for line in md.splitlines() if line.endswith("(attributed)")]
    assert attributed == ["- [S2] notes.txt: “Betahistine is often used.” (attributed)"]
    assert md.index("**You:**") < md.index("**Assistant:**") < md.index("Sources:")


def test_markdown_in_content_stays_inside_its_message():
    conversation = store.create_conversation("Formatting")
    store.add_message(conversation.id, "user", "# not a heading\n```python\nunclosed fence\n\n---\n<pre>")
    store.add_message(conversation.id, "assistant", "Reply", sources=SOURCES[:1])
    lines = store.export_markdown(conversation.id).splitlines()
    start, end = lines.index("**You:**") + 2, lines.index("**Assistant:**") - 4
    assert lines[end + 1 : end + 4] == ["", "---", ""]
    assert all(line.startswith(">") for line in lines[start : end + 1])
    assert "> \\`\\`\\`python" in lines and "> \\<pre\\>" in lines
    assert [line for line in lines if line.startswith("# ")] == ["# Formatting"]


def test_markdown_a_model_wrote_is_shown_as_text_in_the_export():
    from markdown_it import MarkdownIt

    conversation = store.create_conversation("Links ![t](http://example.invalid/t.png)")
    store.add_message(conversation.id, "user", "Show me")
    hostile = ("See ![pixel](http://example.invalid/p.png) and [click](http://example.invalid) <img src=x "
               "onerror=alert(1)> **bold** &amp; `code`")  # fmt: skip
    store.add_message(conversation.id, "assistant", hostile, sources=[{**SOURCES[0], "text": hostile}],
                      citations=[{**CITATIONS[0], "sentence": hostile}])  # fmt: skip
    html = MarkdownIt("commonmark").render(store.export_markdown(conversation.id))
    for live in ("<img", "<a ", "<strong>bold", "<code>code", "&amp; <code>"):
        assert live not in html
    assert "![pixel](http://example.invalid/p.png)" in html and "&lt;img src=x" in html


def test_unicode_and_a_100_kb_message_are_stored_intact():
    conversation = store.create_conversation("Ménière — 5 µg")
    store.add_message(conversation.id, "user", "Ménière — 5 µg 🩺 日本語")
    big = ("Line with ünïcödé and [brackets] *stars* " * 2600)[:100_000] + "END"
    store.add_message(conversation.id, "assistant", big, meta={"note": "µg ≠ mg"})
    user, assistant = store.list_messages(conversation.id)
    assert user.content == "Ménière — 5 µg 🩺 日本語"
    assert assistant.content == big and len(assistant.content) == 100_003
    assert assistant.meta == {"note": "µg ≠ mg"}
    assert store.get_conversation(conversation.id).title == "Ménière — 5 µg"
    with db.connect() as conn:
        raw = conn.execute("SELECT meta FROM messages WHERE id = ?", (assistant.id,)).fetchone()[0]
    assert raw == '{"note": "µg ≠ mg"}'
    assert "Ménière — 5 µg 🩺 日本語" in store.export_markdown(conversation.id)
