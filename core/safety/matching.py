"""Running one rule over a text: keyword prefilter, bounded matches, suppressions (negation, quotes, framing)."""

import heapq
import re
from dataclasses import dataclass
from typing import Any

from core.safety.rules import Rule, RuleSet

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
        self._negated: dict[str, bool] = {}
        self._near: dict[tuple, bool] = {}

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
        if window not in self._negated:
            scope = window
            for m in _SENTENCE_BREAK.finditer(window):
                scope = window[m.end() :]
            self._negated[window] = self.framing.negation.search(scope) is not None
        return self._negated[window]


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
        if rule.gates and len(open_gates) < len(rule.gates):
            # Only the patterns whose keywords occur, in text order (overlaps between patterns are kept).
            matches = heapq.merge(*(regex.finditer(scan.folded) for regex in open_gates), key=lambda m: m.start())
        else:
            matches = rule.folded_regex.finditer(scan.folded)
    else:
        matches = rule.regex.finditer(text)
    for m in matches:
        if m.end() == m.start():
            continue
        # `requires` is searched once, after a first match: most texts never get that far.
        if not hits and not suppressed and rule.requires_regex is not None and not rule.requires_regex.search(text):
            break
        start, end = m.span()
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
