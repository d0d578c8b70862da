"""Check an answer's citations against the sources it was given, and attribute the sentences left uncited.

Small models rarely write ``[S1]`` labels, and when they do the labels may point at nothing. So the answer is
checked in code, sentence by sentence:

- a label that was not among the numbered sources is removed from the text and counted in ``dropped_labels``;
- every cited sentence gets a support score against the passage it cites;
- a sentence without a label is attributed to the passage that supports it best when the support reaches
  ``attribute_threshold`` (such citations are marked ``attributed``), otherwise it is listed as unsupported.

Support blends word overlap (share of the sentence's content words, stemmed, found in the passage) with the
cosine similarity of the two embeddings: overlap catches copied facts, the embedding catches paraphrase.
"""

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from core.rag.chunking import split_segments
from core.rag.index import bm25_tokens

LABEL_GROUP = re.compile(r"\[([^\[\]]{1,60})\]")
LABEL = re.compile(r"\bS\s*(\d{1,3})\b", re.IGNORECASE)
ATTRIBUTE_THRESHOLD = 0.5
OVERLAP_WEIGHT = 0.5


@dataclass(frozen=True)
class Citation:
    """One sentence of the answer linked to one source passage."""

    label: str  # "S2"
    chunk_id: str
    source: str
    page: int | None
    support: float  # 0..1
    attributed: bool  # True: linked in code; False: the model wrote the label
    sentence: str
    sentence_index: int
    span_start: int  # the best-supporting sentence of the passage, as offsets into the passage text
    span_end: int

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    """The checked answer."""

    answer: str  # the answer with fabricated labels removed
    citations: list[Citation] = field(default_factory=list)
    unsupported_sentences: list[str] = field(default_factory=list)
    dropped_labels: list[str] = field(default_factory=list)
    sentences: int = 0

    @property
    def supported_share(self) -> float:
        """Share of the answer's claim sentences that are cited or attributed."""
        return 1.0 - len(self.unsupported_sentences) / self.sentences if self.sentences else 0.0


def verify_citations(
    answer: str,
    sources: list[dict],
    embed: Callable[[list[str]], np.ndarray],
    attribute_threshold: float = ATTRIBUTE_THRESHOLD,
) -> Verification:
    """Verify and complete the citations of an answer.

    Args:
        answer: The model's text.
        sources: The numbered passages the prompt showed: dicts with ``label`` ("S1"), ``chunk_id``, ``source``,
            ``page`` and ``text``.
        embed: Returns unit-length embeddings, shape (len(texts), dim), for a list of texts.
        attribute_threshold: Least support for linking an uncited sentence to a passage.

    Returns:
        The verification.
    """
    by_label = {s["label"].upper(): s for s in sources}
    dropped: list[str] = []

    def clean_group(match: re.Match) -> str:
        labels = [f"S{int(n)}" for n in LABEL.findall(match.group(1))]
        if not labels:
            return match.group(0)  # some other bracketed text, e.g. "[sic]"
        kept = [label for label in labels if label in by_label]
        dropped.extend(label for label in labels if label not in by_label)
        return f"[{', '.join(kept)}]" if kept else ""

    text = LABEL_GROUP.sub(clean_group, answer)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)  # "claim [S9]." -> "claim ." -> "claim."
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    spans = split_segments(text)
    sentences = [text[s:e] for s, e in spans]
    plain = [LABEL_GROUP.sub("", s).strip() for s in sentences]
    claims = [i for i, p in enumerate(plain) if bm25_tokens([p])[0]]  # sentences with content words
    if not claims or not sources:
        unsupported = [sentences[i] for i in claims]
        return Verification(text, [], unsupported, dropped, len(claims))
    passages = [s["text"] for s in sources]
    vectors = embed([plain[i] for i in claims] + passages)  # (claims + passages, dim)
    sentence_vecs, passage_vecs = vectors[: len(claims)], vectors[len(claims) :]
    cosines = sentence_vecs @ passage_vecs.T  # (claims, passages)
    passage_tokens = [set(t) for t in bm25_tokens(passages)]
    citations, unsupported = [], []
    for row, i in enumerate(claims):
        words = set(bm25_tokens([plain[i]])[0])
        overlap = [len(words & tokens) / len(words) for tokens in passage_tokens]
        support = [
            OVERLAP_WEIGHT * o + (1 - OVERLAP_WEIGHT) * max(0.0, float(c))
            for o, c in zip(overlap, cosines[row], strict=True)
        ]
        written = [f"S{int(n)}" for group in LABEL_GROUP.findall(sentences[i]) for n in LABEL.findall(group)]
        written = [label for label in dict.fromkeys(written) if label in by_label]
        if written:
            for label in written:
                j = sources.index(by_label[label])
                citations.append(_citation(sources[j], support[j], False, sentences[i], i, words))
            continue
        best = int(np.argmax(support))
        if support[best] >= attribute_threshold:
            citations.append(_citation(sources[best], support[best], True, sentences[i], i, words))
        else:
            unsupported.append(sentences[i])
    return Verification(text, citations, unsupported, dropped, len(claims))


def _citation(source: dict, support: float, attributed: bool, sentence: str, index: int, words: set) -> Citation:
    passage = source["text"]
    # The passage sentence sharing most content words with the answer sentence is the span to highlight.
    best, best_overlap = (0, len(passage)), -1
    for start, end in split_segments(passage):
        overlap = len(words & set(bm25_tokens([passage[start:end]])[0]))
        if overlap > best_overlap:
            best, best_overlap = (start, end), overlap
    return Citation(
        label=source["label"],
        chunk_id=source["chunk_id"],
        source=source["source"],
        page=source.get("page"),
        support=round(float(support), 4),
        attributed=attributed,
        sentence=sentence,
        sentence_index=index,
        span_start=best[0],
        span_end=best[1],
    )
