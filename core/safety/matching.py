"""Running one rule over a text: keyword prefilter, bounded matches, suppressions (negation, quotes, framing)."""

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.safety.rules import CUT_LETTERS, LONG_TEXT_CHARS, RUN_LIMIT, Rule, RuleSet

SEGMENT_CHARS = 2048
LOOK_CHARS = 320  # context beyond a segment that lookarounds and the per-match checks read (quotes: 300)
# Cut candidates, best first: a word starting with one of a few letters; one of those letters; a word start.
_CUTS = (re.compile(rf"(?<=\s){CUT_LETTERS}"), re.compile(CUT_LETTERS), re.compile(r"(?<=\W)\w"))
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
        self._frame_text: str | None = text
        self._blank: list[tuple[int, int]] = []
        self._frames: dict[str, bool] = {}
        # Repetitive input ("no chest pain " x 7000) repeats the same windows: remember their answers.
        self._negated: dict[tuple[str, bool], bool] = {}
        self._near: dict[tuple, bool] = {}
        self._segments: list[int] | None = None
        self._outcomes: dict[tuple, list[tuple[int, int, Any]]] = {}
        self._long_runs: dict[str, bool] = {}

    def segments(self) -> list[int]:
        """Content-defined cut points of a long repetitive text, or [] when it is short or not repetitive.

        The next cut is the first candidate (see ``_CUTS``) from SEGMENT_CHARS to twice that past the last cut,
        else exactly twice that past it: each cut depends only on the text since the last, so a text
        that repeats itself repeats its segments, and each distinct window is scanned once.
        """
        if self._segments is None:
            cuts: list[int] = []
            folded = self.folded
            if len(folded) >= LONG_TEXT_CHARS and self.aligned:
                # The kind of candidate is chosen once per text (the first kind found early on), so each cut still
                # depends only on the text since the last one.
                cut = next((c for c in _CUTS if c.search(folded, 0, 4 * SEGMENT_CHARS)), _CUTS[-1])
                last = 0
                while last + 2 * SEGMENT_CHARS < len(folded):
                    m = cut.search(folded, last + SEGMENT_CHARS, last + 2 * SEGMENT_CHARS)
                    last = m.start() if m is not None else last + 2 * SEGMENT_CHARS
                    cuts.append(last)
                bounds = [0, *cuts, len(folded)]
                distinct = {folded[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)}
                if len(distinct) * 2 > len(bounds) - 1:  # not repetitive: windows would only add their overlaps
                    cuts = []
            self._segments = cuts
        return self._segments

    def long_run(self, atom: str) -> bool:
        """Whether the text has a run of more than RUN_LIMIT characters that the regex atom ``atom`` matches."""
        if atom not in self._long_runs:
            self._long_runs[atom] = _has_run(self.text, atom, RUN_LIMIT + 1)
        return self._long_runs[atom]

    def outcomes(self, rule: Rule, regexes: list[re.Pattern], source: str, judge) -> Iterator[tuple[int, Any]]:
        """Yield ``(offset, items)`` chunks of the matches of ``regexes`` in ``source``, in order.

        ``items`` are ``(start - offset, end - offset, judge(start, end))``. ``source`` is this text or its
        lower-cased form (the same offsets). ``judge`` reads the text around a match (at most LOOK_CHARS away) and
        this scan's whole-text facts, so in a long repetitive text the answers of a window hold wherever the window
        repeats: they are computed once per distinct window. Windows are used only when the rule's widest match is
        known for this text (``Rule.max_width`` and ``Rule.runs``); otherwise one lazy chunk covers the text (the
        caller may stop early).
        """
        cuts = self.segments()
        width = rule.max_width
        if not cuts or width is None or any(self.long_run(atom) for atom in rule.runs):
            merged = _merged(regexes, source, 0, len(source))
            yield 0, ((m.start(), m.end(), judge(m.start(), m.end())) for m in merged)
            return
        text, look = self.text, max(LOOK_CHARS, self.framing.window_chars + 8)
        patterns = tuple((r.pattern, r.flags) for r in regexes)
        bounds = [0, *cuts, len(text)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            # A match starting in this segment ends within `width` of its end; the regexes' lookarounds and the
            # judge read at most `look` further. Equal windows (at the same place relative to the text's ends, which
            # the window's length and lo's offset in it tell) give equal answers.
            before, end = max(0, lo - look), min(len(text), hi + width + look)
            key = (rule.id, patterns, text[before:end], lo - before, hi - lo)
            found = self._outcomes.get(key)
            if found is None:
                found = self._outcomes[key] = [
                    (m.start() - lo, m.end() - lo, judge(m.start(), m.end()))
                    for m in _merged(regexes, source, lo, end)
                    if m.start() < hi
                ]  # fmt: skip
            yield lo, found

    def blank(self, spans: list[tuple[int, int]]) -> None:
        """Hide masked spans from the framing cues: a patient at "42 Fictional Ave" is not fiction.

        The blanked text is built when a framing cue is first looked for (most texts never need one).
        """
        self._blank = spans
        self._frame_text = None
        self._frames.clear()
        self._outcomes.clear()

    @property
    def frame_text(self) -> str:
        """The text framing cues are looked for in: the text with masked personal data blanked out."""
        if self._frame_text is None:
            out, pos = [], 0
            for start, end in sorted(self._blank):
                start = max(start, pos)
                if end > start:
                    out.extend((self.text[pos:start], " " * (end - start)))
                    pos = end
            out.append(self.text[pos:])
            self._frame_text = "".join(out)
        return self._frame_text

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


def _has_run(text: str, atom: str, length: int) -> bool:
    """Whether ``length`` consecutive characters of ``text`` each match the regex atom (case-blind: a superset).

    A run that long covers two consecutive multiples of ``length // 2``: only where the characters at such a pair
    both match is the text searched (a regex search at every position of 100 KB costs milliseconds).
    """
    step = length // 2
    run = re.compile(f"(?:{atom}){{{length}}}", re.IGNORECASE)
    pair = re.compile(f"(?=(?:{atom}){{2}})", re.IGNORECASE)
    for m in pair.finditer(text[::step]):
        at = m.start() * step
        if run.search(text, max(0, at - length), at + step + length) is not None:
            return True
    return False


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


class Found(NamedTuple):
    """What one rule found: hits that count, matches its suppressions silenced, and every masked span.

    ``hits`` holds at most MAX_HITS_PER_RULE hits per rule (they show where; the verdict is known by then), masking
    rules included, while ``masks`` holds all of a masking rule's spans: ``(passage, start, end, rule_id)``, with
    ``passage`` None for the screened text.
    """

    hits: list[RuleHit]
    suppressed: list[RuleHit]
    masks: list[tuple[int | None, int, int, str]]


_DROP = object()  # a judge's answer for a match that does not count at all (no `near` pattern beside it)


def match_rule(rule: Rule, text: str, scan: Scan, passage: int | None = None) -> Found:
    """Return a rule's hits in ``text``, the matches its suppressions silenced and, for masking rules, every span."""
    found = Found([], [], [])
    if rule.regex is None:
        return found
    if rule.keywords and scan.keywords.isdisjoint(rule.keywords):
        return found
    if rule.folded_regex is not None and scan.aligned:
        open_gates = [regex for needed, regex in rule.gates if not needed.isdisjoint(scan.keywords)]
        # Only the patterns whose keywords occur (overlaps between patterns are kept), else the one alternation.
        regexes = open_gates if rule.gates and len(open_gates) < len(rule.gates) else [rule.folded_regex]
        source = scan.folded
    else:
        regexes, source = [rule.regex], text

    def judge(start: int, end: int) -> Any:
        reason = _suppression(rule, scan, start, end) if rule.suppress else None
        if reason is None and rule.near_regex is not None and not scan.near(rule, start, end):
            return _DROP
        return reason

    hits, suppressed, masks = found
    if rule.action == "redact" and rule.requires_regex is None and not rule.suppress and rule.near_regex is None:
        # A masking rule must find every span; nothing to judge, so take each chunk whole.
        for offset, items in scan.outcomes(rule, regexes, source, judge):
            spans = [(offset + start, offset + end) for start, end, _ in items if end > start]
            masks += [(passage, start, end, rule.id) for start, end in spans]
            hits += [RuleHit(rule.id, rule.category, rule.action, start, end, rule.message, passage)
                     for start, end in spans[: MAX_HITS_PER_RULE - len(hits)]]  # fmt: skip
        return found
    masking = rule.action == "redact"
    checked = rule.requires_regex is None
    for offset, items in scan.outcomes(rule, regexes, source, judge):
        for rel_start, rel_end, reason in items:
            start, end = offset + rel_start, offset + rel_end
            if end == start or reason is _DROP:
                continue
            # `requires` is searched once, after a first match: most texts never get that far.
            if not checked:
                if not rule.requires_regex.search(text):
                    return found
                checked = True
            if reason:
                if len(suppressed) < MAX_HITS_PER_RULE:
                    suppressed.append(RuleHit(rule.id, rule.category, rule.action, start, end, rule.message, passage,
                                              suppressed=reason))  # fmt: skip
                continue
            if len(hits) < MAX_HITS_PER_RULE:
                hits.append(RuleHit(rule.id, rule.category, rule.action, start, end, rule.message, passage))
            if masking:  # a masking rule must find every span
                masks.append((passage, start, end, rule.id))
            elif len(hits) >= MAX_HITS_PER_RULE:
                return found
    return found


def run_rule(rule: Rule, text: str, scan: Scan, context: dict[str, Any]) -> Found:
    """Run a rule over its target: the text, each prepared passage, or the unsupported sentences."""
    if rule.target == "text":
        return match_rule(rule, text, scan)
    found = Found([], [], [])
    if rule.target == "passages":
        for i, (passage, passage_scan) in enumerate(context["passages"]):
            for mine, theirs in zip(found, match_rule(rule, passage, passage_scan, passage=i), strict=True):
                mine += theirs
    else:  # unsupported_sentences: the chat layer's citation check did the matching
        for sentence in context["unsupported_sentences"]:
            start = text.find(sentence)
            end = start + len(sentence) if start >= 0 else -1
            found.hits.append(RuleHit(rule.id, rule.category, rule.action, start, end, rule.message))
    return found
