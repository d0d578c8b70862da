"""Running one rule over a text: keyword prefilter, bounded matches, suppressions (negation, quotes, framing)."""

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.safety.rules import Rule, RuleSet

LONG_TEXT_CHARS = 16_384  # texts at least this long are scanned per segment (see Scan.segments)
SEGMENT_CHARS = 2048
LOOK_CHARS = 256  # context beyond a segment that lookarounds may read
_CUT = re.compile(r"(?<=\s)[bhkoquvy]")
_LONG_RUN = re.compile(r"\w{64}|\W{64}")
_SUBJECT_START = re.compile(r"(?:i|i['’]?m|i['’]?ve|my|he|she|we|they|his|her|our|their)\b", re.IGNORECASE)
_BARE_NO = re.compile(r"(?:^|[^\w'’])no[\s,]*$", re.IGNORECASE)
MAX_HITS_PER_RULE = 20  # hits reported per non-masking rule (and suppressed matches kept per rule)
_QUOTE_SPAN_CHARS = 300  # how far from a hit an opening / closing quote is looked for
_QUOTES = "\"'‘’“”«»"
_SENTENCE_BREAK = re.compile(r"[.!?;\n]|\bbut\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[!?\n]|\.(?!\d)")
# A single quote opens after a space or bracket and before a letter; it closes after a letter or stop and before a
# non-letter, so the apostrophes in "don't" and "husband's" are neither.
_SQ_OPEN = re.compile(r"(?:^|(?<=[\s(\[:]))['‘](?=\w)")
_SQ_CLOSE = re.compile(r"(?<=[\w.!?,])['’](?!\w)")


@dataclass(frozen=True)
class RuleHit:
    """One place where a rule matched. ``start``/``end`` index the screened text (or the passage, see ``passage``)."""

    rule_id: str
    category: str
    action: str
    start: int
    end: int
    message: str
    passage: int | None = None  # index into context["passages"] for hits in retrieved text
    suppressed: str | None = None  # why a match did not count: negation, quoted, meta or past

    def to_dict(self) -> dict:
        """Return a JSON-able dict (``id`` rather than ``rule_id``, as the CLI prints it)."""
        out = {"id": self.rule_id, "category": self.category, "action": self.action, "start": self.start,
               "end": self.end, "message": self.message}  # fmt: skip
        if self.passage is not None:
            out["passage"] = self.passage
        if self.suppressed:
            out["suppressed"] = self.suppressed
        return out


class Scan:
    """Per-text facts computed at most once, and only when a hit needs them (long inputs stay cheap)."""

    def __init__(self, text: str, ruleset: RuleSet) -> None:
        self.text = text
        # Keyword prefilter text: lower case with every run of whitespace as one space, so that a keyword such as
        # "how much" is found whatever whitespace the pattern's \s+ accepted.
        self.folded = text.lower()
        # Offsets in the lower-cased text are offsets in the text when lower() kept the length (it almost always
        # does; "İ" is an exception), and then case-insensitive rules run case-sensitively on it, twice as fast.
        self.aligned = len(self.folded) == len(text)
        self.has_quotes = any(q in text for q in _QUOTES)
        self.lower = " ".join(self.folded.split())
        self.keywords = ruleset.keywords_in(self.lower)
        self.framing = ruleset.framing
        self.frame_text = text  # the text framing cues are looked for in (personal data blanked out)
        self._frames: dict[str, bool] = {}
        # Repetitive input ("no chest pain " x 7000) repeats the same windows: remember their answers.
        self._negated: dict[tuple[str, bool], bool] = {}
        self._near: dict[tuple, bool] = {}
        self._segments: list[int] | None = None
        self._spans: dict[tuple, list[tuple[int, int]]] = {}

    def segments(self) -> list[int]:
        """Content-defined cut points of a long text, or [] when it is short or has a run no rule width covers.

        Cuts fall before words starting with one of a few letters, at least SEGMENT_CHARS apart: they depend only on
        the text nearby, so a text that repeats itself repeats its segments, and each distinct window is scanned
        once. A run of 64 word or non-word characters would let a match outgrow ``Rule.max_width``: no cuts then.
        """
        if self._segments is None:
            cuts: list[int] = []
            folded = self.folded
            if len(folded) >= LONG_TEXT_CHARS:
                last = 0
                for m in _CUT.finditer(folded, SEGMENT_CHARS):
                    if m.start() - last >= SEGMENT_CHARS:
                        cuts.append(m.start())
                        last = m.start()
                bounds = [0, *cuts, len(folded)]
                distinct = {folded[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)}
                # Not repetitive: windows would only add their overlaps to one scan. The run check comes last: it
                # reads the whole text, and most texts are already decided.
                if len(distinct) * 2 > len(bounds) - 1 or _LONG_RUN.search(folded) is not None:
                    cuts = []
            self._segments = cuts
        return self._segments

    def spans(self, rule: Rule, regexes: list[re.Pattern]) -> Iterator[tuple[int, int]]:
        """Yield match spans of ``regexes`` on the folded text in order, memoised per distinct window of it."""
        cuts = self.segments()
        if not cuts or rule.max_width is None:
            yield from ((m.start(), m.end()) for m in _merged(regexes, self.folded, 0, len(self.folded)))
            return
        folded, width = self.folded, rule.max_width
        bounds = [0, *cuts, len(folded)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            # What the regexes can see of a match starting in this segment: a little before it (\b, lookbehinds),
            # and after it the longest match plus room for lookaheads. Equal windows give equal matches.
            end = min(len(folded), hi + width + LOOK_CHARS)
            key = (rule.id, tuple(r.pattern for r in regexes), folded[max(0, lo - LOOK_CHARS) : end], lo == 0)
            if key not in self._spans:
                self._spans[key] = [(m.start() - lo, m.end() - lo) for m in _merged(regexes, folded, lo, end)
                                    if m.start() < hi]  # fmt: skip
            for start, stop in self._spans[key]:
                yield lo + start, lo + stop

    def blank(self, hits: list[RuleHit]) -> None:
        """Hide masked spans from the framing cues: a patient at "42 Fictional Ave" is not fiction."""
        chars = list(self.text)
        for h in hits:
            chars[h.start : h.end] = " " * (h.end - h.start)
        self.frame_text = "".join(chars)
        self._frames.clear()

    def frame(self, name: str) -> bool:
        """Whether a framing cue (meta, past, urgent) occurs in the text, outside masked personal data."""
        if name not in self._frames:
            gate = self.framing.keywords.get(name)
            if gate is not None and gate.isdisjoint(self.keywords):
                self._frames[name] = False  # none of the cue words occurs: skip the regex
            elif name == "urgent":
                self._frames[name] = self._urgent()
            else:
                self._frames[name] = getattr(self.framing, name).search(self.frame_text) is not None
        return self._frames[name]

    def _urgent(self) -> bool:
        # Urgency counts only outside quotes: 'translate "call an ambulance"' is not urgent. 50 looks at most.
        for i, m in enumerate(self.framing.urgent.finditer(self.frame_text)):
            if i >= 50:
                break
            if not self.has_quotes or not _quoted(self.text, m.start(), m.end()):
                return True
        return False

    def near(self, rule: Rule, start: int, end: int) -> bool:
        """Whether a `near` pattern matches within near_chars of the hit, in its sentence, and is not negated."""
        text = self.text
        lo, hi = max(0, start - rule.near_chars), min(len(text), end + rule.near_chars)
        key = (rule.id, text[lo:hi], start - lo, end - lo)
        if key not in self._near:
            for m in _SENTENCE_END.finditer(text, lo, start):
                lo = m.end()
            stop = _SENTENCE_END.search(text, end, hi)
            hi = stop.start() if stop else hi
            self._near[key] = any(
                not (start <= m.start() < end) and not self.negated(m.start())
                for m in rule.near_regex.finditer(text, lo, hi)
            )
        return self._near[key]

    def negated(self, start: int) -> bool:
        """Whether a negation cue ends the few words before ``start``, in the same clause."""
        window = self.text[max(0, start - self.framing.window_chars) : start]
        key = (window, _SUBJECT_START.match(self.text, start) is not None)
        if key not in self._negated:
            scope = window
            for m in _SENTENCE_BREAK.finditer(window):
                scope = window[m.end() :]
            negated = self.framing.negation.search(scope) is not None
            # A bare "no" right before a subject answers a question: "no my dad is not breathing".
            if negated and key[1] and _BARE_NO.search(scope):
                negated = False
            self._negated[key] = negated
        return self._negated[key]


def _merged(regexes: list[re.Pattern], text: str, lo: int, hi: int) -> Iterator[re.Match]:
    if len(regexes) == 1:
        return regexes[0].finditer(text, lo, hi)
    return heapq.merge(*(r.finditer(text, lo, hi) for r in regexes), key=lambda m: m.start())


def _quoted(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] sits between quotes on the same line (looking at most 300 characters each way)."""
    lo = max(0, start - _QUOTE_SPAN_CHARS, text.rfind("\n", 0, start) + 1)  # quotes do not span paragraphs
    newline = text.find("\n", end, end + _QUOTE_SPAN_CHARS)
    hi = newline if newline >= 0 else min(len(text), end + _QUOTE_SPAN_CHARS)
    before, after = text[lo:start], text[end:hi]
    if before.count('"') % 2 == 1 and '"' in after:
        return True
    for opening, closing in (("“", "”"), ("«", "»")):
        if before.rfind(opening) > before.rfind(closing) and closing in after:
            return True
    # Searched in the whole text with bounds (one character past the hit's start so the lookaheads see it), so
    # the lookarounds see the neighbours of the slice.
    opens = list(_SQ_OPEN.finditer(text, lo, start + 1))
    if not opens:
        return False
    closed_before = _SQ_CLOSE.search(text, opens[-1].end(), start + 1)
    return closed_before is None and _SQ_CLOSE.search(text, end, hi) is not None


def _suppression(rule: Rule, scan: Scan, start: int, end: int) -> str | None:
    if "negation" in rule.suppress and scan.negated(start):
        return "negation"
    reason = None
    if "quoted" in rule.suppress and scan.has_quotes and _quoted(scan.text, start, end):
        reason = "quoted"
    elif "meta" in rule.suppress and scan.frame("meta"):
        reason = "meta"
    elif "past" in rule.suppress and scan.frame("past"):
        reason = "past"
    # An emergency told as a story or a quote still counts when the writer adds "right now", "help", ...
    if reason and rule.category == "emergency" and scan.frame("urgent"):
        return None
    return reason


def match_rule(rule: Rule, text: str, scan: Scan, passage: int | None = None) -> tuple[list[RuleHit], list[RuleHit]]:
    """Return a rule's hits in ``text`` and the matches its suppressions silenced."""
    hits: list[RuleHit] = []
    suppressed: list[RuleHit] = []
    if rule.regex is None:
        return hits, suppressed
    if rule.keywords and scan.keywords.isdisjoint(rule.keywords):
        return hits, suppressed
    if rule.folded_regex is not None and scan.aligned:
        open_gates = [regex for needed, regex in rule.gates if not needed.isdisjoint(scan.keywords)]
        # Only the patterns whose keywords occur (overlaps between patterns are kept), else the one alternation.
        regexes = open_gates if rule.gates and len(open_gates) < len(rule.gates) else [rule.folded_regex]
        matches = scan.spans(rule, regexes)
    else:
        matches = ((m.start(), m.end()) for m in rule.regex.finditer(text))
    for start, end in matches:
        if end == start:
            continue
        # `requires` is searched once, after a first match: most texts never get that far.
        if not hits and not suppressed and rule.requires_regex is not None and not rule.requires_regex.search(text):
            break
        reason = _suppression(rule, scan, start, end) if rule.suppress else None
        if reason is None and rule.near_regex is not None and not scan.near(rule, start, end):
            continue
        hit = (rule.id, rule.category, rule.action, start, end, rule.message, passage)
        if reason:
            if len(suppressed) < MAX_HITS_PER_RULE:
                suppressed.append(RuleHit(*hit, suppressed=reason))
            continue
        hits.append(RuleHit(*hit))
        # A masking rule must find every span; for the others a few hits show where, and the verdict is known.
        if rule.action != "redact" and len(hits) >= MAX_HITS_PER_RULE:
            break
    return hits, suppressed


def run_rule(rule: Rule, text: str, scan: Scan, context: dict[str, Any]) -> tuple[list[RuleHit], list[RuleHit]]:
    """Run a rule over its target: the text, each prepared passage, or the unsupported sentences."""
    if rule.target == "text":
        return match_rule(rule, text, scan)
    hits: list[RuleHit] = []
    suppressed: list[RuleHit] = []
    if rule.target == "passages":
        for i, (passage, passage_scan) in enumerate(context["passages"]):
            found, quiet = match_rule(rule, passage, passage_scan, passage=i)
            hits += found
            suppressed += quiet
    else:  # unsupported_sentences: the chat layer's citation check did the matching
        for sentence in context["unsupported_sentences"]:
            start = text.find(sentence)
            end = start + len(sentence) if start >= 0 else -1
            hits.append(RuleHit(rule.id, rule.category, rule.action, start, end, rule.message))
    return hits, suppressed
