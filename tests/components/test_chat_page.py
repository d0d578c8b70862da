"""Chat page through AppTest on the real embedded model and a real index."""

from streamlit.testing.v1 import AppTest

from core.chat import store as chats
from core.config import IngestConfig
from core.rag.ingest import ingest
from tests.core.rag.conftest import DOCS


def _app():
    from components.chat_page import ChatPage

    ChatPage().render()


def test_ask_a_question_and_see_the_answer_with_source_cards(tmp_path, embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest(IngestConfig(index="demo", paths=[str(tmp_path)]), embedder=embedder)
    at = AppTest.from_function(_app, default_timeout=180).run()
    assert not at.exception
    at.chat_input[0].set_value("What do statins lower?").run()
    assert not at.exception
    (conversation,) = chats.list_conversations()
    messages = chats.list_messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert conversation.title == "What do statins lower?"
    answer = messages[1]
    assert answer.sources and answer.citations and answer.safety["output"]["disclaimer"]
    text = "\n".join(m.value for m in at.markdown)
    assert "**\\[S1\\]" in text or "**[S1]" in text
    assert "statins.txt" in text.replace("\\", "")
    assert any("not a medical device" in c.value for c in at.caption)


def test_plain_chat_is_labelled_ungrounded():
    conversation = chats.create_conversation(settings={"index": None})
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert chats.list_conversations()[0].id == conversation.id
    assert "not grounded" in at.warning[0].value


def test_a_source_opens_in_context(tmp_path, embedder):
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    ingest(IngestConfig(index="demo", paths=[str(tmp_path)]), embedder=embedder)
    at = AppTest.from_function(_app, default_timeout=180).run()
    at.chat_input[0].set_value("What do statins lower?").run()
    toggle = next(t for t in at.toggle if t.label == "Open in context")
    toggle.set_value(True).run()
    assert not at.exception
    assert any(":blue-background[" in m.value for m in at.markdown)
