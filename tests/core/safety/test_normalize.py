"""Folding look-alike, invisible and combining characters before screening, with spans mapped back."""

import pytest

from core.safety import load_rules, screen_input
from core.safety.normalize import fold


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def test_ascii_text_is_returned_as_is_without_a_map():
    folded = fold("my chest hurts")
    assert folded.text == "my chest hurts" and folded.origin is None


@pytest.mark.parametrize(
    ("typed", "reads"),
    [
        ("сhеst раin", "chest pain"),  # Cyrillic с, е, р, а
        ("ch\u200best\u200d pain", "chest pain"),  # zero-width space and joiner
        ("c\u0301he\u0308st pain", "chest pain"),  # combining accents
        ("ｃｈｅｓｔ ｐａｉｎ", "chest pain"),  # fullwidth (NFKC)
        ("ѕuісіdе", "suicide"),  # Cyrillic ѕ, і
        ("οverdοse", "overdose"),  # Greek omicron
        ("ﬁnd", "find"),  # ligature
    ],
)
def test_fold_reads_look_alikes_as_latin(typed, reads):
    assert fold(typed).text == reads


def test_spans_map_back_to_the_original_characters():
    typed = "call 555-0147 \u200b\u200b now ﬁne"
    folded = fold(typed)
    start = folded.text.index("555-0147")
    assert typed[slice(*folded.span(start, start + 8))] == "555-0147"
    fi = folded.text.index("fine")
    assert typed[slice(*folded.span(fi, fi + 4))] == "ﬁne"


@pytest.mark.parametrize(
    "typed",
    [
        "I have сrushing сhest раin and I'm sweating",
        "my dad is not brea\u200bthing",
        "I took too many of my sleeping pіlls",
        "ｍｙ ｗｉｆｅ ｉｓ ｎｏｔ ｂｒｅａｔｈｉｎｇ",
    ],
)
def test_look_alike_spellings_no_longer_bypass_the_emergency_rules(rules, typed):
    assert screen_input(typed, rules, log=False).action == "emergency"


def test_redaction_of_a_folded_text_keeps_the_rest_of_what_was_typed(rules):
    typed = "Му phone is 555-0147, café owner here"  # Cyrillic М, у
    verdict = screen_input(typed, rules, log=False)
    assert "555-0147" not in verdict.redacted
    assert verdict.redacted.startswith("Му phone is ") and verdict.redacted.endswith("café owner here")


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("No I have chest pain and I'm sweating", "emergency"),  # "No" answers a question; it negates nothing
        ("no my dad is not breathing", "emergency"),
        ("no I dont have chest pain, just asking about troponin", "allow"),  # "dont" without an apostrophe
        ("my patient is not breathing", "emergency"),  # a clinician with a patient, not a clinical note
        ("our patient is choking", "emergency"),
        ("the patient in bed 4 is not breathing", "emergency"),
        ("Pt denies chest pain", "allow"),
        ("I had an anaphylactic reaction when I was a kid. Do I still need an EpiPen?", "allow"),  # "still" ≠ urgent
        ("he is still not breathing", "emergency"),
        ("I can't breathe through my nose without my decongestant spray", "allow"),
    ],
)
def test_the_known_rule_misses_are_fixed(rules, text, action):
    assert screen_input(text, rules, log=False).action == action
