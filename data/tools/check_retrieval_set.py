#!/usr/bin/env python3
"""Validate the retrieval evaluation set against the demo corpus.

Usage (from the repository root):

    python data/tools/check_retrieval_set.py [--corpus data/corpus] [--eval data/eval/retrieval.jsonl]

Only the standard library is needed, plus pypdf when the set references PDF
files (imported lazily, so the script runs without it if no PDF is involved).

Checks:
  * every line is a JSON object with the fields id, question, gold_source,
    gold_page and answer, with sensible types;
  * ids are unique;
  * every gold_source exists inside the corpus directory;
  * gold_page is a 1-based page number within range for PDFs and null otherwise;
  * every answer occurs in the gold document (for PDFs: on the gold page),
    compared case-insensitively with whitespace normalised;
  * every corpus document (README.md excluded) is the gold source of at least
    one question.

Text is read the way a simple ingestion pipeline would: .json/.jsonl/.csv are
parsed and the string fields of each record joined; other text files are read
as UTF-8, falling back to latin-1 (the corpus has one latin-1 file).

Exit status: 0 when all checks pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO_ROOT / "data" / "corpus"
DEFAULT_EVAL = REPO_ROOT / "data" / "eval" / "retrieval.jsonl"
REQUIRED_FIELDS = ("id", "question", "gold_source", "gold_page", "answer")
STRUCTURED = {".json", ".jsonl", ".csv"}
EXCLUDED_FROM_COVERAGE = {"README.md"}

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Unicode NFC, case-folded, all whitespace runs collapsed to one space."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip().casefold()


def decode_text(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def _record_text(obj) -> str:
    if isinstance(obj, dict):
        return "\n".join(_record_text(v) for v in obj.values())
    if isinstance(obj, list):
        return "\n".join(_record_text(v) for v in obj)
    return "" if obj is None else str(obj)


def load_document(path: Path) -> list[str]:
    """Return the document's text as a list of pages (one entry for non-PDFs)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        try:
            from pypdf import PdfReader  # lazy: only needed for PDFs
        except ImportError as exc:  # pragma: no cover
            raise SystemExit(f"pypdf is required to check PDF answers ({path.name}): {exc}")
        reader = PdfReader(str(path))
        return [page.extract_text() or "" for page in reader.pages]
    text, _ = decode_text(path.read_bytes())
    if suffix == ".json":
        return [_record_text(json.loads(text))]
    if suffix == ".jsonl":
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return ["\n".join(_record_text(r) for r in records)]
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        return ["\n".join(" ".join(row) for row in rows)]
    return [text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--eval", dest="eval_path", type=Path, default=DEFAULT_EVAL)
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()
    errors: list[str] = []

    if not corpus.is_dir():
        print(f"FAIL: corpus directory not found: {corpus}")
        return 1
    if not args.eval_path.is_file():
        print(f"FAIL: evaluation file not found: {args.eval_path}")
        return 1

    items = []
    for lineno, line in enumerate(args.eval_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {lineno}: not a JSON object")
            continue
        missing = [f for f in REQUIRED_FIELDS if f not in obj]
        if missing:
            errors.append(f"line {lineno}: missing fields {missing}")
            continue
        items.append((lineno, obj))

    id_counts = Counter(str(obj["id"]) for _, obj in items)
    for qid, count in sorted(id_counts.items()):
        if count > 1:
            errors.append(f"id {qid!r} is used {count} times")

    cache: dict[Path, list[str]] = {}
    covered: Counter = Counter()
    pdf_page_questions = 0
    structured_questions = 0
    for lineno, obj in items:
        qid = obj["id"]
        where = f"line {lineno} ({qid})"
        bad = [f for f in ("id", "question", "gold_source", "answer")
               if not isinstance(obj[f], str) or not obj[f].strip()]
        if bad:
            errors.append(f"{where}: fields {bad} must be non-empty strings")
            continue
        source = obj["gold_source"]
        path = (corpus / source).resolve()
        if corpus not in path.parents or not path.is_file():
            errors.append(f"{where}: gold_source {source!r} not found in {corpus}")
            continue
        if path not in cache:
            cache[path] = load_document(path)
        pages = cache[path]
        page = obj["gold_page"]
        is_pdf = path.suffix.lower() == ".pdf"
        if is_pdf:
            if isinstance(page, bool) or not isinstance(page, int):
                errors.append(f"{where}: gold_page must be an integer for PDF {source!r}")
                continue
            if not 1 <= page <= len(pages):
                errors.append(f"{where}: gold_page {page} out of range 1..{len(pages)} for {source!r}")
                continue
            haystack = pages[page - 1]
            pdf_page_questions += 1
        else:
            if page is not None:
                errors.append(f"{where}: gold_page must be null for non-PDF {source!r}")
                continue
            haystack = pages[0]
        if path.suffix.lower() in STRUCTURED:
            structured_questions += 1
        if normalise(obj["answer"]) not in normalise(haystack):
            loc = f"page {page} of " if is_pdf else ""
            errors.append(f"{where}: answer {obj['answer']!r} not found in {loc}{source!r}")
            continue
        covered[path.name] += 1

    documents = sorted(p.name for p in corpus.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name not in EXCLUDED_FROM_COVERAGE)
    uncovered = [d for d in documents if covered[d] == 0]
    for name in uncovered:
        errors.append(f"corpus document {name!r} is not the gold source of any question")

    print(f"corpus: {corpus}")
    print(f"evaluation set: {args.eval_path}")
    print(f"questions: {len(items)} | unique ids: {len(id_counts)} | documents: {len(documents)} "
          f"| documents covered: {len(documents) - len(uncovered)}")
    print(f"PDF-page questions: {pdf_page_questions} | JSON/JSONL/CSV questions: {structured_questions}")
    for name in documents:
        print(f"  {covered[name]:3d}  {name}")
    if errors:
        print(f"FAIL: {len(errors)} problem(s)")
        for err in errors:
            print(f"  - {err}")
        return 1
    print("OK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
