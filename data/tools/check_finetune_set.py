#!/usr/bin/env python3
"""Validate the fine-tuning demo set (prompt/completion JSON Lines).

Usage (from the repository root):

    python data/tools/check_finetune_set.py [path]

The path defaults to data/finetune/medqa_demo.jsonl. Only the standard library
is needed.

Checks:
  * the file is UTF-8 (no byte-order mark) and every non-empty line is a JSON
    object; blank lines are reported (a single trailing newline is fine);
  * every object has exactly the fields id, prompt, completion and topic, all
    non-empty strings without leading/trailing whitespace or line breaks;
  * ids are unique;
  * prompts are unique after normalisation (Unicode NFKC, case-folded,
    punctuation dropped, whitespace collapsed), and no two prompts are near
    duplicates (same content words, or a content-word Jaccard similarity of
    NEAR_DUPLICATE_JACCARD or more);
  * prompts end with '?' and contain no personal-advice wording (first or
    second person such as "I", "my", "me", "you", "your"; text inside quotes is
    ignored, as are the Roman numeral I in "lead I", "type I", "Mobitz I",
    "class I" and similar, and in lists such as "I, II and III");
  * completions have 15..60 words and 1..3 sentences, end with '.', and contain
    no markdown, list markers, citations or disclaimers (the app adds those);
  * topics are one or two short lowercase words.

A summary (rows, per-topic counts, completion length statistics) is printed.
Exit status: 0 when all checks pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter
from itertools import combinations
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO_ROOT / "data" / "finetune" / "medqa_demo.jsonl"
FIELDS = ("id", "prompt", "completion", "topic")
MIN_WORDS, MAX_WORDS = 15, 60
MIN_SENTENCES, MAX_SENTENCES = 1, 3
NEAR_DUPLICATE_JACCARD = 0.8

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")
_TOPIC = re.compile(r"^[a-z]+(?: [a-z]+)?$")
# Quoted spans ("...", '...' at word boundaries, and typographic quotes) are ignored by the person checks.
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|‘[^’]*’|(?<!\w)'[^']*'(?!\w)")
# Roman numeral I in common medical names ("lead I", "type I", "Mobitz I", "leads I, II and III").
_ROMAN_I = re.compile(
    r"\b(?:lead|leads|type|types|mobitz|class|classes|grade|stage|phase|factor|degree|schedule|"
    r"category|zone|level|tier|part|chapter|section|step|collagen|complex|photosystem|cranial nerve)\s+I\b"
    r"|\bI(?=\s*(?:,|and|or|to|-)\s*(?:II|III|IV|V)\b)",
    re.IGNORECASE,
)
_PERSONAL = [
    (re.compile(r"(?<![\w'’])I(?![\w])"), "first person 'I'"),
    (re.compile(r"\bI['’](?:m|ve|d|ll)\b", re.IGNORECASE), "first person contraction"),
    (re.compile(r"\b(?:[Mm]y|[Mm]e|[Mm]ine|[Mm]yself)\b"), "first person 'my/me'"),
    (re.compile(r"\b(?:you|your|yours|yourself|you['’](?:re|ve|d|ll))\b", re.IGNORECASE), "second person 'you/your'"),
    (re.compile(r"\b(?:should|can|could|must|do) (?:we|i|one) (?:take|give|stop|start|use)\b", re.IGNORECASE),
     "asks what to take or do"),
    (re.compile(r"\bhow (?:much|many) (?:\w+ ){1,3}(?:should|can|could|do|does|to) (?:\w+ ){0,2}(?:take|give)\b"
                r"|\b(?:dose|dosage|dosing) (?:of \w+ )?(?:for|in) (?:a|an|the|this|him|her|them) ", re.IGNORECASE),
     "asks for an individual dose"),
]
_MARKDOWN = [
    (re.compile(r"\*\*|__|`|^#|\n|\r|\t"), "markdown or line break"),
    (re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s"), "list marker"),
    (re.compile(r"\[\d+(?:[,–-]\s*\d+)*\]|\bet al\b|\bdoi\b|https?://|www\.", re.IGNORECASE), "citation or link"),
    (re.compile(r"not (?:intended as |a substitute for )?medical advice|consult (?:a|your) (?:doctor|physician|gp)|"
                r"\bdisclaimer\b|\bas an ai\b|\bi am not a doctor\b|for informational purposes", re.IGNORECASE),
     "disclaimer (the app adds these)"),
]
# Sentence end: . ! or ? followed by whitespace and an upper-case letter or digit.
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z0-9])")
_STOPWORDS = frozenset(
    "a an the and or of in on at to for by with from as is are was were be been being what which who whom whose "
    "how why when where does do did can could should would may might will it its this that these those there "
    "their they them than then into about over under between during after before most more main common commonly "
    "usually typically normal".split()
)


def normalise_prompt(text: str) -> str:
    """Unicode NFKC, case-folded, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _WS.sub(" ", _PUNCT.sub(" ", text)).strip()


def content_words(text: str) -> frozenset[str]:
    """Normalised prompt words, minus question words and other stopwords (for near-duplicate checks)."""
    return frozenset(w for w in normalise_prompt(text).split() if w not in _STOPWORDS)


def personal_problems(prompt: str) -> list[str]:
    """Labels of the personal-advice patterns found in a prompt (quoted text and Roman numeral I ignored)."""
    text = _ROMAN_I.sub(" ", _QUOTED.sub(" ", prompt))
    return [label for pattern, label in _PERSONAL if pattern.search(text)]


def completion_problems(completion: str) -> list[str]:
    """Problems with a completion's length, sentence count, ending and content (markdown, citations, ...)."""
    problems = []
    words = len(completion.split())
    if not MIN_WORDS <= words <= MAX_WORDS:
        problems.append(f"completion has {words} words (allowed {MIN_WORDS}..{MAX_WORDS})")
    sentences = len(_SENTENCE_END.findall(completion)) + 1
    if not MIN_SENTENCES <= sentences <= MAX_SENTENCES:
        problems.append(f"completion has {sentences} sentences (allowed {MIN_SENTENCES}..{MAX_SENTENCES})")
    if not completion.endswith("."):
        problems.append("completion does not end with '.'")
    for pattern, label in _MARKDOWN:
        if pattern.search(completion):
            problems.append(f"completion contains {label}")
    return problems


def check(path: Path) -> tuple[list[dict], list[str]]:
    """Return the parsed rows and a list of problems found in the file."""
    errors: list[str] = []
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        errors.append("file starts with a UTF-8 byte-order mark")
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"file is not valid UTF-8 ({exc})"]

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # one trailing newline is expected
    rows: list[dict] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            errors.append(f"line {lineno}: blank line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {lineno}: not a JSON object")
            continue
        if set(obj) != set(FIELDS):
            missing = sorted(set(FIELDS) - set(obj))
            extra = sorted(set(obj) - set(FIELDS))
            errors.append(f"line {lineno}: fields must be exactly {list(FIELDS)} (missing {missing}, extra {extra})")
            continue
        where = f"line {lineno} ({obj.get('id')!r})"
        bad = [f for f in FIELDS if not isinstance(obj[f], str) or not obj[f].strip()]
        if bad:
            errors.append(f"{where}: fields {bad} must be non-empty strings")
            continue
        for field in FIELDS:
            value = obj[field]
            if value != value.strip() or "\n" in value or "\r" in value:
                errors.append(f"{where}: {field} has surrounding whitespace or a line break")
        prompt, completion, topic = obj["prompt"], obj["completion"], obj["topic"]
        if not prompt.endswith("?"):
            errors.append(f"{where}: prompt does not end with '?'")
        for label in personal_problems(prompt):
            errors.append(f"{where}: prompt reads as personal advice ({label}): {prompt!r}")
        for problem in completion_problems(completion):
            errors.append(f"{where}: {problem}")
        if not _TOPIC.match(topic):
            errors.append(f"{where}: topic {topic!r} must be one or two lowercase words")
        rows.append({**obj, "_line": lineno})

    id_counts = Counter(r["id"] for r in rows)
    for rid, count in sorted(id_counts.items()):
        if count > 1:
            errors.append(f"id {rid!r} is used {count} times")

    by_norm: dict[str, list[int]] = {}
    for r in rows:
        by_norm.setdefault(normalise_prompt(r["prompt"]), []).append(r["_line"])
    for norm, where in sorted(by_norm.items()):
        if len(where) > 1:
            errors.append(f"duplicate prompt on lines {where}: {norm!r}")

    words = [(r, content_words(r["prompt"])) for r in rows]
    for (a, wa), (b, wb) in combinations(words, 2):
        if normalise_prompt(a["prompt"]) == normalise_prompt(b["prompt"]) or not wa or not wb:
            continue
        jaccard = len(wa & wb) / len(wa | wb)
        if jaccard >= NEAR_DUPLICATE_JACCARD:
            errors.append(f"near-duplicate prompts on lines {a['_line']} and {b['_line']} "
                          f"(content-word Jaccard {jaccard:.2f}): {a['prompt']!r} / {b['prompt']!r}")
    return rows, errors


def main(argv: list[str] | None = None) -> int:
    """Run the checks, print a summary and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH,
                        help=f"JSONL file to check (default: {DEFAULT_PATH.relative_to(REPO_ROOT)})")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"FAIL: file not found: {args.path}")
        return 1

    rows, errors = check(args.path)
    topics = Counter(r["topic"] for r in rows)
    lengths = sorted(len(r["completion"].split()) for r in rows)
    print(f"file: {args.path}")
    print(f"rows: {len(rows)} | unique ids: {len(set(r['id'] for r in rows))} | topics: {len(topics)}")
    if lengths:
        print(f"completion words: min {lengths[0]} | median {lengths[len(lengths) // 2]} | max {lengths[-1]}")
    for topic, count in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:3d}  {topic}")
    if errors:
        print(f"FAIL: {len(errors)} problem(s)")
        for err in errors:
            print(f"  - {err}")
        return 1
    print("OK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
