"""Citation checks on real MiniLM embeddings: fabricated labels dropped, support scored, uncited attributed."""

import pytest

from core.chat.citations import verify_citations

SOURCES = [
    {"label": "S1", "chunk_id": "a", "source": "flutter.md", "page": None,
     "text": "Atrial flutter shows sawtooth flutter waves in leads II, III and aVF. With 2:1 block the rate is 150."},
    {"label": "S2", "chunk_id": "b", "source": "statins.txt", "page": 3,
     "text": "Statins lower LDL cholesterol. Muscle aches are the most commonly reported adverse effect."},
]  # fmt: skip


@pytest.fixture(scope="module")
def embed(embedder):
    return embedder.encode


def test_written_labels_are_kept_and_scored(embed):
    result = verify_citations("Flutter gives sawtooth waves in II, III and aVF [S1].", SOURCES, embed)
    assert result.dropped_labels == [] and result.unsupported_sentences == []
    (citation,) = result.citations
    assert (citation.label, citation.source, citation.attributed) == ("S1", "flutter.md", False)
    assert citation.support > 0.6
    span = SOURCES[0]["text"][citation.span_start : citation.span_end]
    assert span.startswith("Atrial flutter shows sawtooth")


def test_fabricated_labels_are_removed_and_counted(embed):
    result = verify_citations("Statins lower LDL cholesterol [S2][S7]. Muscle aches are common [S9].", SOURCES, embed)
    assert result.dropped_labels == ["S7", "S9"]
    assert "[S7]" not in result.answer and "[S9]" not in result.answer and "[S2]" in result.answer
    assert result.answer.endswith("Muscle aches are common.")
    labels = {(c.label, c.attributed) for c in result.citations}
    assert labels == {("S2", False), ("S2", True)}  # the second sentence lost its fake label and was attributed


def test_uncited_sentences_are_attributed_or_flagged(embed):
    answer = "Muscle aches are the most common adverse effect of statins. The moon is made of green cheese."
    result = verify_citations(answer, SOURCES, embed)
    assert [(c.source, c.attributed) for c in result.citations] == [("statins.txt", True)]
    assert result.unsupported_sentences == ["The moon is made of green cheese."]
    assert result.supported_share == 0.5


def test_label_variants_and_other_brackets(embed):
    result = verify_citations("Sawtooth waves appear in flutter [S1, S2]. Rate is 150 [sic].", SOURCES, embed)
    assert {c.label for c in result.citations if not c.attributed} == {"S1", "S2"}
    assert "[sic]" in result.answer


def test_no_sources_means_every_claim_is_unsupported(embed):
    result = verify_citations("Digoxin slows the heart.", [], embed)
    assert result.citations == [] and result.unsupported_sentences == ["Digoxin slows the heart."]
