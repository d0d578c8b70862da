"""Metrics against their reference implementations: the official SQuAD v1.1 script, sacrebleu and rouge-score;
retrieval and citation figures against values worked out by hand."""

import math
from importlib import metadata

import pytest
import sacrebleu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer as rs

from core.evaluate import metrics as M
from tests.fixtures.eval import squad_v11_official as squad

# --- SQuAD EM / F1 against the official script

SQUAD_CASES = [
    ("", [""]),  # empty vs empty: EM 1, F1 0
    ("?!", ["..."]),  # punctuation only: both normalise to ""
    ("?!", ["answer"]),
    ("the a an", [""]),  # articles only
    ("the a an", ["An"]),
    ("The Cat", ["cat"]),
    ("the cat sat", ["a cat sat on the mat", "cat", "dog sat"]),  # several references
    ("dog", ["cat", "mouse", "dog."]),
    ("cat cat cat", ["cat"]),  # repeated tokens: Counter intersection
    ("Bazett's formula", ["Bazett's formula", "Bazetts formula"]),
    ("QT > 500 ms", ["500 ms", "QTc > 500ms"]),  # numbers with units
    ("5 mg/kg IV", ["5 mg per kg", "5mgkg iv"]),
    ("café-au-lait spots", ["cafe au lait spots", "Café-au-lait"]),  # accented Latin, ASCII hyphen removed
    ("Ταχυκαρδία κόλπων", ["ταχυκαρδία", "ΤΑΧΥΚΑΡΔΙΑ ΚΌΛΠΩΝ"]),  # Greek, mixed case
    ("Фибрилляция предсердий", ["фибрилляция", "трепетание предсердий"]),  # Cyrillic
    ("«Ταχυκαρδία»", ["Ταχυκαρδία"]),  # non-ASCII punctuation is not stripped by SQuAD
    ("An   ECG\tshows\n ST elevation", ["ecg shows st-elevation", "ST elevation"]),  # white space, mixed case
    ("37.5 °C", ["37.5°C", "375 °c"]),
    ("theatre", ["the atre", "theatre"]),  # "the" inside a word is not an article
]


@pytest.mark.parametrize(("prediction", "references"), SQUAD_CASES)
def test_exact_match_equals_official_script(prediction, references):
    official = squad.metric_max_over_ground_truths(squad.exact_match_score, prediction, references)
    assert M.exact_match(prediction, references) == float(official)


@pytest.mark.parametrize(("prediction", "references"), SQUAD_CASES)
def test_token_f1_equals_official_script(prediction, references):
    official = squad.metric_max_over_ground_truths(squad.f1_score, prediction, references)
    assert M.token_f1(prediction, references) == official


def test_empty_vs_empty_scores_em_one_f1_zero():
    assert M.exact_match("", [""]) == 1.0
    assert M.token_f1("", [""]) == 0.0
    assert M.exact_match("?!", ["..."]) == 1.0
    assert M.token_f1("the a an", [""]) == 0.0


def test_normalize_answer_equals_official_script():
    for prediction, references in SQUAD_CASES:
        for text in [prediction, *references]:
            assert M.normalize_answer(text) == squad.normalize_answer(text)


_ALPHABET = "aAbBcCeEtThHnN019 \t\n.,!?'-_()«»\"café-ÉàüßİαβΓΔωΩжЖыЯ°µ"
_TEXT = st.text(alphabet=_ALPHABET, max_size=30) | st.lists(
    st.sampled_from(["the", "a", "an", "The", "A", "cat", "Cat.", "café", "ΑΒΓ", "жук", "5mg", "?!", "-", ""]),
    max_size=6,
).map(" ".join)


@settings(max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(prediction=_TEXT, references=st.lists(_TEXT, min_size=1, max_size=3))
def test_squad_metrics_match_official_script_on_random_text(prediction, references):
    assert M.normalize_answer(prediction) == squad.normalize_answer(prediction)
    em = squad.metric_max_over_ground_truths(squad.exact_match_score, prediction, references)
    f1 = squad.metric_max_over_ground_truths(squad.f1_score, prediction, references)
    assert M.exact_match(prediction, references) == float(em)
    assert M.token_f1(prediction, references) == f1


# --- BLEU against sacrebleu

ONE_REF = (
    ["the cat sat on the mat", "a dog barked loudly at night", "Hello world"],
    [["the cat sat on a mat"], ["the dog barked at night"], ["hello world"]],
)
SEVERAL_REFS = (
    ["the cat sat on the mat", "a dog barked loudly at night", "Hello world"],
    [["the cat sat on a mat", "a cat was on the mat"], ["the dog barked at night", "a dog barked"],
     ["hello world", "Hello, world!"]],
)  # fmt: skip
VARIABLE_REFS = (
    ["the cat sat on the mat", "a dog barked loudly at night", "Hello world", "QT interval is 440 ms"],
    [["the cat sat on a mat", "a cat was on the mat", "there is a cat on the mat"], ["the dog barked at night"],
     ["hello world", "Hello, world!"], ["the QT interval is 440 ms"]],
)  # fmt: skip


def _sacrebleu_streams(references):
    # Built here independently of metrics.reference_streams: stream i holds every row's i-th reference or None.
    width = max(len(r) for r in references)
    return [[row[i] if i < len(row) else None for row in references] for i in range(width)]


@pytest.mark.parametrize(("predictions", "references"), [ONE_REF, SEVERAL_REFS, VARIABLE_REFS])
def test_corpus_bleu_equals_sacrebleu(predictions, references):
    expected = sacrebleu.corpus_bleu(predictions, _sacrebleu_streams(references)).score
    assert M.corpus_bleu(predictions, references) == expected
    assert 0 < expected < 100


def test_reference_streams_pad_short_rows_with_none():
    assert M.reference_streams([["a"], ["b", "c"]]) == [["a", "b"], [None, "c"]]


@pytest.mark.parametrize(("predictions", "references"), [ONE_REF, SEVERAL_REFS, VARIABLE_REFS])
def test_bleu_from_stats_equals_corpus_bleu(predictions, references):
    rows = M.bleu_stats(predictions, references)
    assert len(rows) == len(predictions)
    assert M.bleu_from_stats(rows) == M.corpus_bleu(predictions, references)
    # Rows scored one at a time (as a run stores them) are the same statistics.
    assert rows == [M.bleu_stats([p], [r])[0] for p, r in zip(predictions, references, strict=True)]


@pytest.mark.parametrize("subset", [[0], [1, 3], [0, 2, 3], [3, 3, 1]])
def test_summed_stats_of_a_subset_equal_corpus_bleu_of_that_subset(subset):
    predictions, references = VARIABLE_REFS
    rows = M.bleu_stats(predictions, references)
    sub_preds, sub_refs = [predictions[i] for i in subset], [references[i] for i in subset]
    expected = sacrebleu.corpus_bleu(sub_preds, _sacrebleu_streams(sub_refs)).score
    assert M.bleu_from_stats([rows[i] for i in subset]) == M.corpus_bleu(sub_preds, sub_refs) == expected


def test_bleu_of_nothing_is_zero():
    assert M.corpus_bleu([], []) == 0.0
    assert M.bleu_stats([], []) == []
    assert M.bleu_from_stats([]) == 0.0


# --- ROUGE against rouge-score


@pytest.mark.parametrize(
    ("prediction", "references"),
    [
        ("the cat sat on the mat", ["the cat was on the mat"]),
        ("the cat sat on the mat", ["a dog", "the cat sat on a mat", "mat"]),
        ("Atrial Fibrillation, irregular!", ["atrial fibrillation is irregularly irregular"]),
        ("no overlap at all", ["something else entirely"]),
        ("café-au-lait spots", ["café au lait"]),
    ],
)
def test_rouge_equals_rouge_score_with_the_same_tokenizer(prediction, references):
    scorer = rs.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=M.UnicodeTokenizer())
    expected = {name: s.fmeasure for name, s in scorer.score_multi(references, prediction).items()}
    assert M.rouge(prediction, references) == expected
    assert M.rouge(prediction, references, scorer=M.rouge_scorer()) == expected


def test_identical_greek_scores_one_where_rouge_score_default_scores_zero():
    text = "Η κολπική μαρμαρυγή είναι ακανόνιστη"
    assert M.rouge(text, [text]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    default = rs.RougeScorer(["rouge1", "rouge2", "rougeL"]).score_multi([text], text)
    assert {name: s.fmeasure for name, s in default.items()} == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_unicode_tokenizer_keeps_every_script_lower_cased():
    assert M.UnicodeTokenizer().tokenize("ΑΒΓ, Жук-5 café") == ["αβγ", "жук", "5", "café"]


def test_generation_scores_has_every_row_metric():
    scores = M.generation_scores("the cat sat", ["The cat sat."])
    assert scores == {"exact_match": 1.0, "f1": 1.0, "rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0,
                      "answer_words": 3.0}  # fmt: skip


# --- Retrieval, by hand


def _hits(*sources):
    return [{"source": s, "page": p} for s, p in sources]


def test_gold_at_rank_one():
    scores = M.retrieval_scores(_hits(("a.md", None), ("b.md", None), ("c.md", None)), [{"file": "a.md"}], k=3)
    assert scores == {"recall@3": 1.0, "mrr": 1.0, "ndcg@3": 1.0}


def test_gold_at_rank_three():
    scores = M.retrieval_scores(_hits(("b.md", None), ("c.md", None), ("a.md", None)), [{"file": "a.md"}], k=3)
    assert scores["recall@3"] == 1.0
    assert scores["mrr"] == pytest.approx(1 / 3)
    assert scores["ndcg@3"] == pytest.approx((1 / math.log2(4)) / (1 / math.log2(2)))


def test_gold_absent_or_below_the_cut_off():
    absent = M.retrieval_scores(_hits(("b.md", None), ("c.md", None)), [{"file": "a.md"}], k=3)
    assert absent == {"recall@3": 0.0, "mrr": 0.0, "ndcg@3": 0.0}
    below = M.retrieval_scores(_hits(("b.md", None), ("c.md", None), ("a.md", None)), [{"file": "a.md"}], k=2)
    assert below == {"recall@2": 0.0, "mrr": 0.0, "ndcg@2": 0.0}


def test_second_passage_of_a_document_takes_no_rank():
    retrieved = _hits(("b.md", 1), ("b.md", 2), ("b.md", 3), ("a.md", 1))
    scores = M.retrieval_scores(retrieved, [{"file": "a.md", "page": 1}], k=2)
    # b.md is one document: a.md is the 2nd document, within k=2.
    assert scores["recall@2"] == 1.0
    assert scores["mrr"] == pytest.approx(1 / 2)
    assert scores["ndcg@2"] == pytest.approx(1 / math.log2(3))


def test_two_gold_documents():
    gold = [{"file": "a.md"}, {"file": "b.md"}]
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    both = M.retrieval_scores(_hits(("a.md", None), ("x.md", None), ("b.md", None)), gold, k=3)
    assert both["recall@3"] == 1.0
    assert both["mrr"] == 1.0
    assert both["ndcg@3"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / ideal)
    one = M.retrieval_scores(_hits(("x.md", None), ("b.md", None), ("y.md", None)), gold, k=3)
    assert one["recall@3"] == 0.5
    assert one["mrr"] == pytest.approx(1 / 2)
    assert one["ndcg@3"] == pytest.approx((1 / math.log2(3)) / ideal)


def test_ideal_dcg_stops_at_k():
    gold = [{"file": "a.md"}, {"file": "b.md"}, {"file": "c.md"}]
    scores = M.retrieval_scores(_hits(("a.md", None), ("b.md", None)), gold, k=2)
    assert scores["recall@2"] == pytest.approx(2 / 3)
    assert scores["ndcg@2"] == pytest.approx(1.0)


def test_right_file_wrong_page_counts_by_document_not_by_page():
    retrieved = _hits(("a.md", 2), ("b.md", 1))
    gold = [{"file": "a.md", "page": 5}]
    assert M.retrieval_scores(retrieved, gold, k=2, by_page=False) == {"recall@2": 1.0, "mrr": 1.0, "ndcg@2": 1.0}
    assert M.retrieval_scores(retrieved, gold, k=2, by_page=True) == {"recall@2": 0.0, "mrr": 0.0, "ndcg@2": 0.0}


def test_by_page_ranks_each_page_of_a_document():
    retrieved = _hits(("a.md", 2), ("a.md", 2), ("a.md", 5))
    gold = [{"file": "a.md", "page": 5}]
    by_page = M.retrieval_scores(retrieved, gold, k=3, by_page=True)
    # (a.md, 2) twice is one rank; (a.md, 5) is rank 2.
    assert by_page["recall@3"] == 1.0
    assert by_page["mrr"] == pytest.approx(1 / 2)
    assert by_page["ndcg@3"] == pytest.approx(1 / math.log2(3))
    two_pages = M.retrieval_scores(retrieved, [{"file": "a.md", "page": 2}, {"file": "a.md", "page": 5}], k=3,
                                   by_page=True)  # fmt: skip
    assert two_pages["recall@3"] == 1.0
    assert two_pages["ndcg@3"] == pytest.approx(1.0)
    # By document, the two gold pages are one gold document.
    by_doc = M.retrieval_scores(retrieved, [{"file": "a.md", "page": 2}, {"file": "a.md", "page": 5}], k=3)
    assert by_doc == {"recall@3": 1.0, "mrr": 1.0, "ndcg@3": 1.0}


def test_no_gold_and_no_retrieval_score_zero():
    assert M.retrieval_scores([], [{"file": "a.md"}], k=5) == {"recall@5": 0.0, "mrr": 0.0, "ndcg@5": 0.0}
    assert M.retrieval_scores(_hits(("a.md", None)), [], k=5) == {"recall@5": 0.0, "mrr": 0.0, "ndcg@5": 0.0}


def test_source_name_is_the_file_name():
    assert M.source_name("data/corpus/ecg_basics.md") == "ecg_basics.md"
    assert M.source_name("C:\\docs\\ecg_basics.md") == "ecg_basics.md"
    assert M.source_name("ecg_basics.md") == "ecg_basics.md"


# --- Citations


def _cite(source, sentence_index, support, attributed):
    return {"source": source, "sentence_index": sentence_index, "support": support, "attributed": attributed}


def test_citation_scores_of_a_full_answer():
    answer = {
        "citations": [_cite("data/corpus/a.md", 0, 0.3, False), _cite("b.md", 1, 0.8, True),
                      _cite("c.md", 2, 0.5, False)],
        "unsupported_sentences": ["An uncited claim."],
        "dropped_labels": ["S9", "S12"],
        "covered": True,
    }  # fmt: skip
    scores = M.citation_scores(answer, [{"file": "a.md", "page": None}])
    assert scores == {
        "cites_gold": 1.0,  # a path whose file name is the gold file
        "supported_rate": 2 / 4,  # sentences 1 and 2 reach the 0.5 support (inclusive); 0 does not; one uncited
        "written_labels": 2.0,
        "attributed_labels": 1.0,
        "dropped_labels": 2.0,
        "not_covered": 0.0,
    }


def test_a_sentence_with_several_citations_counts_once():
    answer = {"citations": [_cite("a.md", 0, 0.1, False), _cite("b.md", 0, 0.9, False)]}
    scores = M.citation_scores(answer, [{"file": "z.md"}])
    assert scores["supported_rate"] == 1.0
    assert scores["cites_gold"] == 0.0
    assert scores["written_labels"] == 2.0


def test_citation_scores_of_an_uncovered_or_empty_answer():
    assert M.citation_scores({"answer": "Not covered.", "covered": False, "citations": []}, [{"file": "a.md"}]) == {
        "cites_gold": 0.0, "supported_rate": 0.0, "written_labels": 0.0, "attributed_labels": 0.0,
        "dropped_labels": 0.0, "not_covered": 1.0}  # fmt: skip
    empty = M.citation_scores({}, [])
    assert empty["not_covered"] == 0.0
    assert empty["supported_rate"] == 0.0
    only_unsupported = M.citation_scores({"unsupported_sentences": ["x", "y"]}, [])
    assert only_unsupported["supported_rate"] == 0.0


# --- score_texts and signatures


def test_score_texts_refuses_mismatched_or_empty_lists():
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        M.score_texts(["a", "b"], [["a"]])
    with pytest.raises(ValueError):
        M.score_texts([], [])


def test_score_texts_returns_means_bleu_and_n():
    predictions = ["the cat sat on the mat", "Bazett"]
    references = [["a cat sat on the rug"], ["Bazett's formula", "Bazett"]]
    out = M.score_texts(predictions, references)
    assert out["n"] == 2
    assert out["exact_match"] == 0.5
    assert out["f1"] == pytest.approx((0.75 + 1.0) / 2)  # 3 of 4 normalised words shared; an exact second row
    assert out["bleu"] == M.corpus_bleu(predictions, references)
    assert out["answer_words"] == pytest.approx((6 + 1) / 2)
    assert "bleu" in out["signatures"]
    assert all("." not in name for name in out["signatures"])


def test_signatures_name_tokenizers_packages_and_versions():
    sigs = M.signatures(k=5, references=[["a"], ["b", "c"]])
    assert sigs["exact_match"]["metric"] == "exact_match"
    assert sigs["f1"]["metric"] == "token_f1"
    assert "SQuAD v1.1" in sigs["f1"]["normaliser"]
    bleu = sigs["bleu"]
    assert bleu["package"] == "sacrebleu"
    assert bleu["version"] == metadata.version("sacrebleu")
    assert "nrefs:var" in bleu["signature"]
    assert f"version:{sacrebleu.__version__}" in bleu["signature"]
    assert "nrefs:1" in M.signatures(k=5, references=[["a"], ["b"]])["bleu"]["signature"]
    for name in ("rouge1", "rouge2", "rougeL"):
        assert sigs[name]["package"] == "rouge-score"
        assert sigs[name]["version"] == metadata.version("rouge-score")
        assert M.UnicodeTokenizer.name in sigs[name]["tokenizer"]
    assert sigs["retrieval.doc.recall@5"]["level"] == "doc"
    assert {"retrieval.doc.mrr", "retrieval.doc.ndcg@5", "retrieval.page.recall@5"} <= set(sigs)
    assert "citations.supported_rate" in sigs
