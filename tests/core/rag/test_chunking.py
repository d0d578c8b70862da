"""Chunking: exact spans, token limits from the embedding tokenizer, overlap, sentence boundaries, stable ids."""

import pytest

from core.rag.chunking import TokenCounter, chunk_units, split_segments
from core.rag.loaders import Unit, load_file
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def counter(embedder):
    return TokenCounter(embedder.tokenizer_file)


def test_segments_follow_sentences_paragraphs_and_headings():
    text = "First sentence. Second one!\n\n# Heading\n- item one\n- item two"
    assert [text[s:e] for s, e in split_segments(text)] == [
        "First sentence.", "Second one!", "# Heading", "- item one", "- item two",
    ]  # fmt: skip


def test_chunks_are_exact_spans_within_the_token_limit(counter):
    units = load_file(REPO_ROOT / "data" / "corpus" / "ecg_interpretation_handbook.pdf").units
    chunks = chunk_units(units, "ecg.pdf", counter, chunk_tokens=64, overlap_tokens=16)
    by_page = {u.page: u.text for u in units}
    assert len(chunks) > len(units)
    for chunk in chunks:
        assert by_page[chunk.page][chunk.start : chunk.end] == chunk.text
        assert len(counter.offsets([chunk.text])[0]) <= 64
    assert {c.page for c in chunks} == set(by_page)


def test_consecutive_chunks_overlap_and_end_at_sentence_boundaries(counter):
    text = " ".join(f"Sentence number {i} is about the QT interval and heart rate." for i in range(40))
    chunks = chunk_units([Unit(text)], "s.txt", counter, chunk_tokens=50, overlap_tokens=15)
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert right.start < left.end, "consecutive chunks share text"
        assert left.text.endswith(".")


def test_a_sentence_longer_than_a_chunk_is_cut_by_tokens(counter):
    text = "word " * 500
    chunks = chunk_units([Unit(text.strip())], "long.txt", counter, chunk_tokens=100, overlap_tokens=10)
    assert len(chunks) >= 5
    assert all(len(counter.offsets([c.text])[0]) <= 100 for c in chunks)


def test_ids_are_stable_and_change_with_content(counter):
    first = chunk_units([Unit("Digoxin slows AV conduction.", page=2)], "d.md", counter, 50, 10)
    again = chunk_units([Unit("Digoxin slows AV conduction.", page=2)], "d.md", counter, 50, 10)
    other = chunk_units([Unit("Digoxin slows AV nodal conduction.", page=2)], "d.md", counter, 50, 10)
    assert first[0].id == again[0].id != other[0].id
