"""Metric functions with their signatures: generation, retrieval and citations.

Generation: SQuAD EM/F1, sacrebleu BLEU, rouge-score ROUGE. Retrieval: recall@k, MRR, nDCG@k by document and by
page. Citations: gold sources cited, supported sentences, written and attributed labels.

Every metric is computed by the reference implementation where one exists (sacrebleu, rouge-score) or by the
official SQuAD v1.1 definition, so a figure here means what it means elsewhere. :func:`signatures` records, for each
metric, the tokenizer, the normaliser and the package version behind it; a report stores it beside the values.
"""

import math
import re
import string
from collections import Counter
from importlib import metadata

GENERATION_METRICS = ("exact_match", "f1", "bleu", "rouge1", "rouge2", "rougeL", "answer_words")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORD = re.compile(r"\w+", re.UNICODE)  # letters and digits of any script


# --- SQuAD v1.1 (the official evaluate-v1.1.py, same normalisation and the same max over references)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, the articles a/an/the and extra white space (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = set(string.punctuation)


def exact_match(prediction: str, references: list[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference (empty equals empty), else 0.0."""
    return float(max(normalize_answer(prediction) == normalize_answer(ref) for ref in references))


def token_f1(prediction: str, references: list[str]) -> float:
    """SQuAD token F1, the best over the references (0 when nothing is shared, so empty vs empty scores 0)."""
    return max(_f1(prediction, ref) for ref in references)


def _f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- BLEU (sacrebleu, corpus level)


def bleu_metric():
    """A sacrebleu BLEU with its defaults (13a tokenizer, exponential smoothing, mixed case)."""
    from sacrebleu.metrics import BLEU

    return BLEU()


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Rows of references → sacrebleu's reference streams (padded with None: a variable number per row)."""
    width = max((len(r) for r in references), default=1)
    return [[r[i] if i < len(r) else None for r in references] for i in range(width)]


def bleu_stats(predictions: list[str], references: list[list[str]]) -> list[list[int]]:
    """Per-row BLEU sufficient statistics (n-gram matches and totals, lengths); sum rows to score a subset."""
    if not predictions:
        return []
    return bleu_metric()._extract_corpus_statistics(predictions, reference_streams(references))


def bleu_from_stats(rows: list[list[int]]) -> float:
    """Corpus BLEU (0–100) from the summed statistics of the rows, as sacrebleu's paired bootstrap computes it."""
    if not rows:
        return 0.0
    summed = [sum(column) for column in zip(*rows, strict=True)]
    return float(bleu_metric()._compute_score_from_stats(summed).score)


def corpus_bleu(predictions: list[str], references: list[list[str]]) -> float:
    """The corpus BLEU (0–100) of sacrebleu for the predictions against their references."""
    if not predictions:
        return 0.0
    return float(bleu_metric().corpus_score(predictions, reference_streams(references)).score)


# --- ROUGE (rouge-score, with a tokenizer that keeps every script's letters)


class UnicodeTokenizer:
    """Lower-cased runs of letters and digits of any script, no stemming.

    rouge-score's default tokenizer keeps only ``[a-z0-9]``, so two identical Greek or Cyrillic strings score 0.
    """

    name = "unicode-words-lower"

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into lower-cased word tokens."""
        return _WORD.findall(text.lower())


def rouge_scorer():
    """A rouge-score scorer for ROUGE-1/2/L with :class:`UnicodeTokenizer`."""
    from rouge_score import rouge_scorer as rs

    return rs.RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer())


def rouge(prediction: str, references: list[str], scorer=None) -> dict[str, float]:
    """ROUGE-1/2/L F-measures, each the best over the references (rouge-score's ``score_multi``)."""
    scores = (scorer or rouge_scorer()).score_multi(references, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def answer_words(prediction: str) -> int:
    """Length of an answer in words (white-space separated)."""
    return len(prediction.split())


def generation_scores(prediction: str, references: list[str], scorer=None) -> dict[str, float]:
    """Every per-row generation metric of one answer (BLEU is a corpus metric and is computed over rows)."""
    return {"exact_match": exact_match(prediction, references), "f1": token_f1(prediction, references),
            **rouge(prediction, references, scorer), "answer_words": float(answer_words(prediction))}  # fmt: skip


# --- Retrieval against gold sources


def _gold_keys(gold: list[dict], by_page: bool) -> list:
    keys = [(g["file"], g.get("page")) if by_page else g["file"] for g in gold]
    return list(dict.fromkeys(keys))


def _ranked_keys(retrieved: list[dict], by_page: bool) -> list:
    # Several passages of one document are one retrieved document: keep the rank of its first passage.
    keys = [(r["source"], r.get("page")) if by_page else r["source"] for r in retrieved]
    return list(dict.fromkeys(keys))


def retrieval_scores(retrieved: list[dict], gold: list[dict], k: int, by_page: bool = False) -> dict[str, float]:
    """recall@k, MRR and nDCG@k (binary relevance) of one ranked list against the gold sources.

    Args:
        retrieved: The sources the answer was given, best first (``source`` file name, ``page``).
        gold: ``[{"file": name, "page": n or None}]``.
        k: The cut-off (the system's top_k).
        by_page: Match (file, page) instead of the file alone.

    Returns:
        ``{"recall@k", "mrr", "ndcg@k"}`` with the numeric k in the names.
    """
    wanted = set(_gold_keys(gold, by_page))
    ranked = _ranked_keys(retrieved, by_page)[:k]
    hits = [i for i, key in enumerate(ranked) if key in wanted]
    recall = len(hits) / len(wanted) if wanted else 0.0
    mrr = 1.0 / (hits[0] + 1) if hits else 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i in hits)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(wanted))))
    return {f"recall@{k}": recall, "mrr": mrr, f"ndcg@{k}": dcg / ideal if ideal else 0.0}


def source_name(path: str) -> str:
    """The file name a gold source names, from an indexed source path."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


# --- Citations


CITATION_METRICS = ("cites_gold", "supported_rate", "written_labels", "attributed_labels", "dropped_labels",
                    "not_covered")  # fmt: skip


def citation_scores(answer: dict, gold: list[dict]) -> dict[str, float]:
    """Citation figures of one answer (``core.chat`` Answer as a dict).

    Returns:
        ``cites_gold`` (1 when a citation points at a gold file), ``supported_rate`` (sentences with a citation of
        enough support over the claim sentences), ``written_labels``, ``attributed_labels``, ``dropped_labels``
        (counts) and
        ``not_covered`` (1 when the answer said the corpus does not cover the question).
    """
    from core.chat.citations import ATTRIBUTE_THRESHOLD

    citations = answer.get("citations") or []
    gold_files = {g["file"] for g in gold}
    cited_sentences = {c["sentence_index"] for c in citations}
    # A label the model wrote is kept whatever its support; a sentence counts as supported only when one of its
    # citations reaches the support the chat requires to attribute a sentence itself.
    supported = {c["sentence_index"] for c in citations if c["support"] >= ATTRIBUTE_THRESHOLD}
    claims = len(cited_sentences) + len(answer.get("unsupported_sentences") or [])
    return {
        "cites_gold": float(any(source_name(c["source"]) in gold_files for c in citations)),
        "supported_rate": len(supported) / claims if claims else 0.0,
        "written_labels": float(sum(not c["attributed"] for c in citations)),
        "attributed_labels": float(sum(bool(c["attributed"]) for c in citations)),
        "dropped_labels": float(len(answer.get("dropped_labels") or [])),
        "not_covered": float(not answer.get("covered", True)),
    }


# --- Signatures


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def bleu_signature(references: list[list[str]]) -> str:
    """The signature string of sacrebleu for these references (it names their count: a number, or ``var``)."""
    bleu = bleu_metric()
    if references:
        bleu.corpus_score([""] * len(references), reference_streams(references))
    else:
        bleu.corpus_score([""], [[""]])
    return str(bleu.get_signature())


def signatures(k: int | None = None, references: list[list[str]] | None = None) -> dict[str, dict]:
    """What each metric was computed with: metric, tokenizer, normaliser, package and version.

    Args:
        k: The retrieval cut-off (names the retrieval metrics).
        references: The run's references (sacrebleu's signature states how many each row has).
    """
    squad = {"tokenizer": "white space after normalisation", "normaliser": "SQuAD v1.1 (lower, strip ASCII "
             "punctuation, drop a/an/the, collapse white space)", "package": "workbench (official SQuAD v1.1 "
             "definition)", "version": "1.1", "aggregate": "mean over rows; max over references"}  # fmt: skip
    rouge_sig = {"tokenizer": UnicodeTokenizer.name + r" (regex \w+, any script, no stemming)",
                 "normaliser": "lower case", "package": "rouge-score", "version": _version("rouge-score"),
                 "aggregate": "mean over rows of the F-measure; best reference (score_multi)"}  # fmt: skip
    sigs = {
        "exact_match": {"metric": "exact_match", **squad},
        "f1": {"metric": "token_f1", **squad},
        "bleu": {
            "metric": "bleu",
            "tokenizer": "13a",
            "normaliser": "none (mixed case)",
            "package": "sacrebleu",
            "version": _version("sacrebleu"),
            "signature": bleu_signature(references or []),
            "aggregate": "corpus BLEU over all rows (failed rows score an empty answer)",
        },  # fmt: skip
        **{name: {"metric": name, **rouge_sig} for name in ROUGE_TYPES},
        "answer_words": {
            "metric": "answer_words",
            "tokenizer": "white space",
            "normaliser": "none",
            "package": "workbench",
            "version": None,
            "aggregate": "mean over rows",
        },  # fmt: skip
    }
    retrieval = {"tokenizer": None, "normaliser": "gold file name (and page) against retrieved sources, "
                 "deduplicated by document or page, first rank kept", "package": "workbench",
                 "version": None}  # fmt: skip
    for level in ("doc", "page"):
        for name in (f"recall@{k}", "mrr", f"ndcg@{k}"):
            sigs[f"retrieval.{level}.{name}"] = {"metric": name, "level": level, **retrieval}
    for name in CITATION_METRICS:
        sigs[f"citations.{name}"] = {"metric": name, "tokenizer": "core.chat.citations sentences",
                                     "normaliser": None, "package": "workbench", "version": None}  # fmt: skip
    return sigs


def score_texts(predictions: list[str], references: list[list[str]]) -> dict:
    """The generation metrics of answers made elsewhere (``workbench eval metrics``): means, corpus BLEU, n.

    Raises:
        ValueError: If the lists differ in length or are empty.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} answers but {len(references)} references")
    if not predictions:
        raise ValueError("No answers to score")
    scorer = rouge_scorer()
    rows = [generation_scores(p, r, scorer) for p, r in zip(predictions, references, strict=True)]
    means = {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}
    return {"n": len(rows), **means, "bleu": corpus_bleu(predictions, references),
            "signatures": {k: v for k, v in signatures(references=references).items() if "." not in k}}  # fmt: skip
