"""Split text units into token-bounded, overlapping chunks that keep exact character spans and stable ids.

Sizes are counted with the embedding model's own tokenizer, so a chunk never exceeds what the model reads.
Chunks end at sentence or paragraph boundaries where possible; a sentence longer than a chunk is cut by tokens.
"""

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.rag.loaders import Unit

# A boundary after sentence punctuation, at blank lines, and before Markdown headings and list items.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:#{1,6}\s|[-*•]\s|\d+[.)]\s))")


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: ``text == unit_text[start:end]`` of its page or record."""

    id: str
    source: str
    page: int | None
    record: int | None
    start: int
    end: int
    text: str
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


class TokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json`` (the embedding model's own tokenizer)."""

    def __init__(self, tokenizer_file: Path):
        """Load the tokenizer (fast, Rust; no model weights)."""
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self._tok.no_truncation()
        self._tok.no_padding()

    def offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Return, per text, the character span of each token (special tokens excluded)."""
        encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        return [list(enc.offsets) for enc in encodings]


def chunk_id(source: str, page: int | None, record: int | None, start: int, end: int, text: str) -> str:
    """Return a stable id: the same text at the same place of the same source always gets the same id."""
    key = f"{source}\x00{page}\x00{record}\x00{start}\x00{end}\x00{text}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def split_segments(text: str) -> list[tuple[int, int]]:
    """Split text into sentence/paragraph segments as (start, end) spans, whitespace trimmed, none empty.

    Args:
        text: The unit's text.

    Returns:
        Spans covering all non-whitespace text, in order.
    """
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed


def chunk_units(
    units: list[Unit], source: str, counter: TokenCounter, chunk_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Chunk every unit of one document.

    Args:
        units: Pages or records of the document.
        source: The document's name in the index.
        counter: The embedding model's tokenizer.
        chunk_tokens: Largest chunk, in tokens.
        overlap_tokens: Tokens repeated from the end of one chunk at the start of the next.

    Returns:
        Chunks in document order.

    Raises:
        ValueError: If the overlap is not smaller than the chunk: the window could not advance, and long sentences
            would be lost (configs refuse this earlier, with a message: ``IngestConfig.check_chunking``).
    """
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"overlap_tokens {overlap_tokens} must be >= 0 and below chunk_tokens {chunk_tokens}")
    chunks = []
    for unit in units:
        for start, end in _spans(unit.text, counter, chunk_tokens, overlap_tokens):
            text = unit.text[start:end]
            cid = chunk_id(source, unit.page, unit.record, start, end, text)
            chunks.append(Chunk(cid, source, unit.page, unit.record, start, end, text, unit.metadata))
    return chunks


def _spans(text: str, counter: TokenCounter, chunk_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    segments = split_segments(text)
    if not segments:
        return []
    # Token spans per segment, shifted to positions in `text`.
    pieces: list[tuple[int, int, int]] = []  # (start, end, n_tokens) after cutting over-long segments
    for (s, e), offs in zip(segments, counter.offsets([text[s:e] for s, e in segments]), strict=True):
        if len(offs) <= chunk_tokens:
            pieces.append((s, e, max(1, len(offs))))
            continue
        step = chunk_tokens - overlap_tokens
        for i in range(0, len(offs), step):
            window = offs[i : i + chunk_tokens]
            pieces.append((s + window[0][0], s + window[-1][1], len(window)))
            if i + chunk_tokens >= len(offs):
                break
    spans, i = [], 0
    while i < len(pieces):
        j, total = i, 0
        while j < len(pieces) and (total + pieces[j][2] <= chunk_tokens or j == i):
            total += pieces[j][2]
            j += 1
        spans.append((pieces[i][0], pieces[j - 1][1]))
        if j >= len(pieces):
            break
        # Start the next chunk with the trailing pieces of this one that fit in the overlap budget.
        back, kept = j, 0
        while back - 1 > i and kept + pieces[back - 1][2] <= overlap_tokens:
            back -= 1
            kept += pieces[back][2]
        i = back
    return spans
