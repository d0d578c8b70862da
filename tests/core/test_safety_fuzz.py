"""No rule can be made slow or crash: property tests over every rule, and 100 KB adversarial inputs.

Time bounds here are several times what the benchmark measures (benchmarks/safety.py), so that a shared or slow
CI machine does not flake; catastrophic backtracking shows up as seconds or worse, far beyond them.
"""

import json
import random
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import paths
from core.safety import load_rules, screen_input, screen_output
from core.safety.matching import MAX_HITS_PER_RULE

RULES = load_rules()
PATTERN_RULES = [r for r in RULES.rules if r.regex is not None]
VOCAB = sorted({k for r in RULES.rules for k in r.keywords} | {"no", "not", "my", "i", "'", '"', ".", "\n", "555"})
ADVERSARIAL = {
    "one_letter": "a" * 100_000,
    "negated_repeats": "chest pain no " * 7_143,
    "digits": "1" * 100_000,
    "digits_and_spaces": "1 " * 50_000,
    "at_signs": "a@" * 50_000,
    "spaces": " " * 100_000,
    "quotes": "'a \"b " * 16_667,
    "one_long_word": "chestpainshortnessofbreath" * 3_847,
    "dots_and_digits": "1.2.3.4." * 12_500,
}


def _best_ms(fn, text, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000


@pytest.mark.parametrize("rule", PATTERN_RULES, ids=lambda r: r.id)
def test_every_match_of_a_rule_contains_one_of_its_keywords(rule):
    # The keyword prefilter skips a rule when none of its keywords occurs: that is only sound if every string the
    # patterns can match contains one. Hypothesis generates strings from the rule's own regex to check it.
    if not rule.keywords:
        pytest.skip("no prefilter")

    @settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(rule.regex, fullmatch=True))
    def check(text):
        assert not RULES.keywords_in(" ".join(text.lower().split())).isdisjoint(rule.keywords), text

    check()


@pytest.mark.parametrize("frame", ["meta", "past", "urgent"])
def test_every_framing_cue_contains_one_of_its_keywords(frame):
    keywords = RULES.framing.keywords[frame]

    @settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(getattr(RULES.framing, frame), fullmatch=True))
    def check(text):
        assert not RULES.keywords_in(" ".join(text.lower().split())).isdisjoint(keywords), text

    check()


@settings(max_examples=150, derandomize=True, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=12)), max_size=120).map(" ".join))
def test_random_text_from_rule_words_never_raises(text):
    for verdict in (
        screen_input(text, RULES, log=False),
        screen_output(text, {"passages": [text], "unsupported_sentences": [text[:20]]}, RULES, log=False),
    ):
        assert verdict.action in ("allow", "emergency", "block")
        for hit in verdict.hits:
            assert 0 <= hit.start <= hit.end or hit.start == -1


@settings(max_examples=60, derandomize=True, deadline=200)
@given(st.text(min_size=1, max_size=3000))
def test_redaction_never_keeps_a_masked_phone_number(text):
    verdict = screen_input(f"{text} call 555-0147 {text}", RULES, log=False)
    assert "555-0147" not in verdict.redacted.replace(text, "")


def test_folded_and_case_insensitive_matching_agree_on_the_labelled_texts():
    texts = [json.loads(line)["text"] for line in (paths.shipped_data_dir() / "eval" / "safety.jsonl").open()]
    for rule in PATTERN_RULES:
        if rule.folded_regex is None:
            continue
        for text in texts:
            plain = [m.span() for m in rule.regex.finditer(text)]
            assert plain == [m.span() for m in rule.folded_regex.finditer(text.lower())], (rule.id, text)


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_100_kb_adversarial_inputs_screen_in_bounded_time(kind):
    text = ADVERSARIAL[kind]
    assert 99_000 <= len(text) <= 101_000
    assert _best_ms(lambda t: screen_input(t, RULES, log=False), text) < 200
    assert _best_ms(lambda t: screen_output(t, {"passages": [t]}, RULES, log=False), text, repeat=1) < 400


@pytest.mark.parametrize("rule", PATTERN_RULES, ids=lambda r: r.id)
def test_each_rule_stays_linear_on_its_own_examples_repeated(rule):
    # Dense matches are the worst case for the per-hit checks (negation, quotes, framing): 20 KB of them.
    seed = " ".join(rule.examples) or " ".join(rule.keywords) or "x"
    text = ((seed + ". ") * (20_000 // (len(seed) + 2) + 1))[:20_000]
    screen = screen_input if rule.stage != "output" else (lambda t, r, log: screen_output(t, {"passages": [t]}, r))
    assert _best_ms(lambda t: screen(t, RULES, log=False), text, repeat=1) < 400


def test_a_typical_message_takes_under_a_millisecond():
    texts = [json.loads(line)["text"] for line in (paths.shipped_data_dir() / "eval" / "safety.jsonl").open()]
    for text in texts[:50]:
        screen_input(text, RULES, log=False)  # warm up
    timings = sorted(_best_ms(lambda t: screen_input(t, RULES, log=False), t, repeat=2) for t in texts)
    assert timings[len(timings) // 2] < 1.0  # the median; the benchmark reports p50 and p95


def test_compiled_rules_have_no_unbounded_gaps():
    # `.*` / `.+` invite slow scans of long texts; rules use bounded windows such as {{GAP40}} instead.
    for rule in PATTERN_RULES:
        assert not re.search(r"(?<!\\)\.[*+]", rule.regex.pattern), rule.id


def _long_texts():
    rows = [json.loads(line)["text"] for line in (paths.shipped_data_dir() / "eval" / "safety.jsonl").read_text(
        encoding="utf-8").splitlines()]  # fmt: skip
    examples = [e for r in RULES.rules for e in r.examples]
    out = {
        "rule_words": ("should i take my pills chest pain no my dad is not breathing and help " * 1500),
        "examples_repeated": (" ".join(examples) + " ") * 6,
        "labelled_repeated": (" ".join(rows[:40]) + "\n") * 10,
        "phone_and_words": ("call 555-0147 about my dad, he is not breathing. " * 800),
        "emergency_at_the_end": ("my model labels notes about statins and sleep " * 900) + "my wife is not breathing",
        # No whitespace at all: cut inside the word (a rule whose width needs short runs scans it whole).
        "one_long_word": "chestpainshortnessofbreath" * 1000 + " my wife is not breathing",
        "digits_and_spaces": "1 " * 10_000 + "call 555-0147, my dad is not breathing",
        "phone_numbers": "555-0147 " * 3000 + "42 Example Street",
        # Runs of 100 spaces let `\s+` outgrow the width computed for runs of at most 63.
        "long_space_runs": ("my dad is not" + " " * 100 + "breathing, call 555-0147 " + "x" * 70 + " ") * 120,
    }
    return out


@pytest.mark.parametrize("kind", sorted(_long_texts()))
def test_a_long_repetitive_text_scanned_in_windows_gets_the_whole_scan_verdict(kind, monkeypatch):
    from core.safety import matching

    text = _long_texts()[kind]
    windowed = screen_input(text, RULES, log=False)
    monkeypatch.setattr(matching, "LONG_TEXT_CHARS", 10**9)
    whole = screen_input(text, RULES, log=False)
    assert windowed.action == whole.action
    assert windowed.rule_ids == whole.rule_ids
    assert windowed.redacted == whole.redacted
    assert windowed.masked == whole.masked
    assert {h.suppressed for h in windowed.suppressed} == {h.suppressed for h in whole.suppressed}


def test_a_masking_rule_reports_a_few_hits_and_masks_every_span():
    text = "call 555-0147 or " * 500
    verdict = screen_input(text, RULES, log=False)
    assert verdict.masked == 500
    assert verdict.redacted.count("[PHONE]") == 500 and "555-0147" not in verdict.redacted
    assert len([h for h in verdict.hits if h.rule_id == "pii.phone"]) == MAX_HITS_PER_RULE
    assert verdict.to_dict()["masked"] == 500


def test_a_rule_width_is_exact_or_names_the_runs_it_assumes_short():
    phone = RULES.get("pii.phone")
    assert phone.max_width is not None and phone.runs == ()  # every repeat is bounded
    chest = RULES.get("emergency.chest_pain")
    assert chest.max_width is not None and r"\s" in chest.runs


def test_every_rule_match_fits_its_max_width_on_the_labelled_texts():
    rows = [json.loads(line)["text"] for line in (paths.shipped_data_dir() / "eval" / "safety.jsonl").read_text(
        encoding="utf-8").splitlines()]  # fmt: skip
    for rule in PATTERN_RULES:
        if rule.max_width is None:
            continue
        for text in rows + list(rule.examples):
            for m in rule.regex.finditer(text):
                assert m.end() - m.start() <= rule.max_width, (rule.id, m.group())


def test_the_sampled_run_check_agrees_with_a_regex_search_everywhere():
    from core.safety.matching import _has_run

    rng = random.Random(1)
    for _ in range(1500):
        pieces = [rng.choice("ab  \t1-") if rng.random() < 0.7 else rng.choice(" a") * rng.randint(1, 90)
                  for _ in range(rng.randint(0, 300))]  # fmt: skip
        text = "".join(pieces)
        for atom in (r"\s", r"\w", r"[a-z]", r"\d", r"\W"):
            for length in (8, 21, 64):
                want = re.search(f"(?:{atom}){{{length}}}", text, re.IGNORECASE) is not None
                assert _has_run(text, atom, length) == want, (atom, length, text)


def _keywords_whole_scan(lowered):
    present = {k for k in RULES.keywords if len(k) == 1 and k in lowered}
    for found in set(RULES.keyword_regex.findall(lowered)):
        present.update(found[:i] for i in range(2, len(found) + 1) if found[:i] in RULES.keywords)
    return present


def test_keywords_read_word_by_word_in_a_long_dense_text_are_those_of_the_whole_scan():
    rng = random.Random(0)
    keywords = sorted(RULES.keywords)
    for kind, text in ADVERSARIAL.items():
        lowered = " ".join(text.lower().split())
        assert RULES.keywords_in(lowered) == _keywords_whole_scan(lowered), kind
    for trial in range(30):
        vocab = [rng.choice(keywords) for _ in range(8)] + ["xx", "chestpainbreath" * rng.randint(1, 400)]
        lowered = " ".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(100, 6000))).split())
        assert RULES.keywords_in(lowered) == _keywords_whole_scan(lowered), trial
