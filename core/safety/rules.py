"""Safety rules as data: the Rule / RuleSet dataclasses, and validating and pre-compiling rule-file contents."""

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError

SHIPPED_RULES = Path(__file__).resolve().parent / "rules.yaml"
STAGES = ("input", "output", "both")
ACTIONS = ("banner", "block", "redact", "append")  # allow-with-banner, block-with-message, redact, append a note
CATEGORIES = ("emergency", "personal_advice", "dosing", "pii", "injection", "uncited", "custom")
TARGETS = ("text", "passages", "unsupported_sentences")
SUPPRESSORS = ("negation", "quoted", "meta", "past")
_MACRO = re.compile(r"\{\{(\w+)\}\}")


class SafetyRuleError(WorkbenchError):
    """A rule file that cannot be used: bad YAML, a bad regex, an unknown action or stage, a duplicate id."""


@dataclass(frozen=True)
class Rule:
    """One screening rule, as written in a rules file (patterns are compiled once, at load)."""

    id: str = field(metadata={"help": "Unique id, e.g. emergency.stroke; a user rule with the same id overrides"})
    category: str = field(metadata={"help": f"One of {', '.join(CATEGORIES)}"})
    stage: str = field(metadata={"help": "input (user text), output (model text) or both"})
    action: str = field(metadata={"help": "banner (allow, emergency banner first), block, redact or append a note"})
    message: str = field(metadata={"help": "What the user is told when the rule fires"})
    patterns: tuple[str, ...] = field(default=(), metadata={"help": "Python regexes; {{MACRO}} expands a macro"})
    keywords: tuple[str, ...] = field(
        default=(), metadata={"help": "Lower-case strings, one of which every match contains; the rule is skipped "
                              "when none occurs (a cheap prefilter that keeps 100 KB inputs fast)"}
    )  # fmt: skip
    requires: tuple[str, ...] = field(
        default=(), metadata={"help": "Regexes of which at least one must also occur somewhere in the text"}
    )
    near: tuple[str, ...] = field(
        default=(), metadata={"help": "Regexes of which one must match within near_chars of a hit, in the same "
                              "sentence and not negated (chest pain near breathlessness)"}
    )  # fmt: skip
    near_chars: int = field(default=60, metadata={"help": "How far from a hit a `near` pattern may match"})
    target: str = field(default="text", metadata={"help": "text, passages (retrieved text) or unsupported_sentences"})
    placeholder: str = field(default="", metadata={"help": "Replacement for a redact rule, e.g. [PHONE]"})
    suppress: tuple[str, ...] = field(
        default=(), metadata={"help": "What silences a match: negation, quoted, meta (fiction, teaching, data work), "
                              "past (a resolved event)"}
    )  # fmt: skip
    ignore_case: bool = field(default=True, metadata={"help": "Match case-insensitively (names need False)"})
    enabled: bool = field(default=True, metadata={"help": "Default state; the Safety page can toggle it"})
    examples: tuple[str, ...] = field(
        default=(), metadata={"help": "Phrases that must fire the rule (checked at load)"}
    )
    description: str = field(default="", metadata={"help": "Why the rule exists"})
    source: str = field(default="shipped", metadata={"help": "shipped or the user file that defined or changed it"})
    regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    requires_regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    near_regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    # The same patterns compiled case-sensitively, for the lower-cased text: `re` matches about twice as fast
    # without IGNORECASE. None when the rule must see the original case.
    folded_regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    # Per pattern: (its keywords, the pattern compiled for the lower-cased text). A rule whose patterns each need
    # only some of its keywords runs just the patterns whose keywords occur (dense texts stay fast).
    gates: tuple[tuple[frozenset[str], re.Pattern], ...] = field(default=(), repr=False, compare=False)
    # The longest match the patterns allow when no unbounded repeat of one character class (`\s+`, `[a-z]*`)
    # meets a run of more than 63 such characters (None: unbounded even then); ``runs`` lists those classes (empty:
    # the width is exact). Long repetitive texts are scanned in windows of this overlap (see matching.py).
    max_width: int | None = field(default=None, repr=False, compare=False)
    runs: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict:
        """Return the rule as JSON-able data (without the compiled regexes)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _COMPILED}


_COMPILED = ("regex", "requires_regex", "near_regex", "folded_regex", "gates", "max_width", "runs")
RUN_LIMIT = 63  # see Rule.max_width
LONG_TEXT_CHARS = 16_384  # texts at least this long are read in pieces (keywords) and windows (matching.py)
# Content-defined cuts of long texts fall before one of these letters (where a text has them).
CUT_LETTERS = "[bhkoquvy]"
# A class or escape repeated without bound; other escapes and classes are matched whole (group 1 None), so that
# "\w+" inside "[\w+]" is not taken for a repeat.
_CLASS = r"\[\^?\]?(?:\\.|[^\]\\])*\]"
_SINGLE_ATOM_REPEAT = re.compile(rf"(\\[wWsSdD]|{_CLASS})([+*]|\{{\d+,\}})|\\.|{_CLASS}")


@dataclass(frozen=True)
class Framing:
    """Context cues shared by all rules: negation, meta framing (fiction, teaching, data work), past, urgency."""

    negation: re.Pattern  # matched against the few words before a hit, anchored at their end
    meta: re.Pattern
    past: re.Pattern
    urgent: re.Pattern  # "right now", "help": keeps an emergency alive inside a quote or a story frame
    window_chars: int = 40
    keywords: dict[str, frozenset[str]] = field(default_factory=dict)  # frame name -> prefilter keywords


@dataclass(frozen=True)
class RuleSet:
    """A validated, compiled set of rules plus the framing cues; ``disabled`` holds rule ids toggled off."""

    rules: tuple[Rule, ...]
    framing: Framing
    files: tuple[str, ...]
    disabled: frozenset[str] = frozenset()
    errors: tuple[str, ...] = ()  # problems with the user file; the set in force is the last good one
    keyword_regex: re.Pattern | None = field(default=None, repr=False, compare=False)
    keywords: frozenset[str] = field(default=frozenset(), repr=False)  # of all rules and framing cues

    def keywords_in(self, lowered: str) -> set[str]:
        """Return which rule keywords occur in ``lowered`` (lower case, whitespace runs as one space).

        One pass of a trie-shaped regex finds the longest keyword starting at each position; every keyword is
        a prefix of what was found where it starts, so the prefixes recover the rest. Single characters (digits,
        "@") are checked with ``in``, which is a memchr. A long text made of few distinct words (dense or
        repeated input) is read word by word instead: the pass runs over each distinct word once, and the
        keywords with a space in them are looked for with ``in``. Both ways find every keyword that occurs.

        Args:
            lowered: The normalised text.

        Returns:
            The keywords present.
        """
        present = {k for k in self.keywords if len(k) == 1 and k in lowered}
        if self.keyword_regex is None:
            return present
        parts = [lowered]
        if len(lowered) >= LONG_TEXT_CHARS:
            pieces = _distinct_pieces(lowered, max(map(len, self.keywords)))
            if sum(map(len, pieces)) * 4 < len(lowered):
                parts = pieces
                present.update(k for k in self.keywords if " " in k and k in lowered)
        for part in parts:
            for found in set(self.keyword_regex.findall(part)):
                present.update(found[:i] for i in range(2, len(found) + 1) if found[:i] in self.keywords)
        return present

    def get(self, rule_id: str) -> Rule:
        """Return the rule with this id.

        Args:
            rule_id: A rule id.

        Returns:
            The rule.

        Raises:
            SafetyRuleError: No rule has that id.
        """
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise SafetyRuleError(f"No safety rule with id {rule_id!r}. `workbench safety rules` lists them.")

    def active(self, stage: str) -> list[Rule]:
        """Return the enabled rules that apply at ``stage`` ("input" or "output")."""
        return [r for r in self.rules if r.stage in (stage, "both") and r.id not in self.disabled]

    def with_disabled(self, disabled: frozenset[str]) -> "RuleSet":
        """Return a copy with these rule ids switched off."""
        return replace(self, disabled=frozenset(disabled))


_PIECE_CUT = re.compile(CUT_LETTERS)


def _distinct_pieces(lowered: str, overlap: int) -> list[str]:
    """The distinct words of ``lowered``, a word over 4 KB cut into pieces that overlap by ``overlap`` characters.

    Every string without a space, at most ``overlap`` long, that occurs in the text occurs in a piece. A long word
    is cut before one of a few letters, 1 to 2 KB after the last cut (else at 2 KB), so a word that repeats itself
    gives few distinct pieces.
    """
    pieces = set()
    for word in set(lowered.split(" ")):
        last = 0
        while last + 4096 < len(word):
            m = _PIECE_CUT.search(word, last + 1024, last + 2048)
            cut = m.start() if m else last + 2048
            pieces.add(word[last : cut + overlap])
            last = cut
        pieces.add(word[last:])
    return list(pieces)


def _expand(pattern: str, macros: dict[str, str], where: str) -> str:
    # Macros may use macros; ten levels is far more than any rule needs and stops a macro that names itself.
    for _ in range(10):
        if not _MACRO.search(pattern):
            return pattern

        def sub(m: re.Match) -> str:
            if m.group(1) not in macros:
                raise SafetyRuleError(f"{where}: unknown macro {{{{{m.group(1)}}}}}")
            return macros[m.group(1)]

        pattern = _MACRO.sub(sub, pattern)
    raise SafetyRuleError(f"{where}: macros nested too deeply (does a macro use itself?)")


def _compile(patterns: list[str], macros: dict[str, str], flags: int, where: str) -> re.Pattern:
    expanded = [_expand(p, macros, where) for p in patterns]
    for raw, pattern in zip(patterns, expanded, strict=True):
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise SafetyRuleError(f"{where}: bad regex {raw!r}: {exc}") from exc
    # One alternation per rule: one scan of the text per rule instead of one per pattern.
    return re.compile("|".join(f"(?:{p})" for p in expanded), flags)


def _as_tuple(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SafetyRuleError(f"{where}: '{key}' must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            # YAML turns on/no/yes and bare numbers into booleans and ints: quote them.
            raise SafetyRuleError(f"{where}: '{key}' must hold non-empty strings, got {item!r} (quote it)")
    return tuple(value)


def _build_rule(raw: dict, macros: dict[str, str], where: str) -> Rule:
    known = {f.name for f in fields(Rule)} - set(_COMPILED)
    unknown = set(raw) - known
    if unknown:
        raise SafetyRuleError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = [k for k in ("id", "category", "stage", "action", "message") if not raw.get(k)]
    if missing:
        raise SafetyRuleError(f"{where}: missing field(s) {', '.join(missing)}")
    values = dict(raw)
    for key in ("id", "category", "stage", "action", "message", "target", "placeholder", "description", "source"):
        if key in values and not isinstance(values[key], str):
            raise SafetyRuleError(f"{where}: '{key}' must be a string")
    for key in ("ignore_case", "enabled"):
        if key in values and not isinstance(values[key], bool):
            raise SafetyRuleError(f"{where}: '{key}' must be true or false")
    if "near_chars" in values and (type(values["near_chars"]) is not int or not 0 < values["near_chars"] <= 200):
        raise SafetyRuleError(f"{where}: 'near_chars' must be a whole number from 1 to 200")
    for key in ("patterns", "keywords", "requires", "near", "suppress", "examples"):
        if key in values:
            values[key] = _as_tuple(values[key], key, where)
    for key, allowed in (("stage", STAGES), ("action", ACTIONS), ("category", CATEGORIES), ("target", TARGETS)):
        if key in values and values[key] not in allowed:
            raise SafetyRuleError(f"{where}: unknown {key} {values[key]!r} (expected one of {', '.join(allowed)})")
    bad = set(values.get("suppress", ())) - set(SUPPRESSORS)
    if bad:
        raise SafetyRuleError(f"{where}: unknown suppress value(s) {', '.join(sorted(bad))}")
    if any(k != k.lower() for k in values.get("keywords", ())):
        raise SafetyRuleError(f"{where}: keywords must be lower case")
    rule = Rule(**values)
    if rule.target != "unsupported_sentences" and not rule.patterns:
        raise SafetyRuleError(f"{where}: a rule needs at least one pattern")
    if rule.action == "redact" and not rule.placeholder:
        raise SafetyRuleError(f"{where}: a redact rule needs a placeholder such as [PHONE]")
    flags = re.IGNORECASE if rule.ignore_case else 0
    regex = _compile(list(rule.patterns), macros, flags, where) if rule.patterns else None
    requires = _compile(list(rule.requires), macros, re.IGNORECASE, where) if rule.requires else None
    near = _compile(list(rule.near), macros, re.IGNORECASE, where) if rule.near else None
    folded = None
    if regex is not None and rule.ignore_case and "(?-i" not in regex.pattern:
        folded = re.compile(regex.pattern)
    gates = _gates(rule, macros, where) if folded is not None else ()
    width, runs = _max_width(regex.pattern) if regex is not None else (None, ())
    rule = replace(rule, regex=regex, requires_regex=requires, near_regex=near, folded_regex=folded, gates=gates,
                   max_width=width, runs=runs)  # fmt: skip
    for example in rule.examples:
        if regex is None or not regex.search(example) or (near is not None and not near.search(example)):
            raise SafetyRuleError(f"{where}: example {example!r} does not match the rule's patterns")
        if folded is not None and not folded.search(example.lower()):
            raise SafetyRuleError(f"{where}: example {example!r} does not match once lower-cased (an upper-case "
                                  "letter in a pattern?)")  # fmt: skip
        if rule.keywords and not any(k in example.lower() for k in rule.keywords):
            raise SafetyRuleError(f"{where}: example {example!r} contains none of the rule's keywords")
    return rule


def _max_width(pattern: str) -> tuple[int | None, tuple[str, ...]]:
    """Longest match of ``pattern`` when every unbounded run of one character class is at most 63 long.

    Returns the width and those classes (each as a regex atom); (None, ()) when a group repeats without bound.
    """
    import re._parser as sre_parse

    def bound(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)
        low = {"+": "1", "*": "0"}.get(m.group(2)) or m.group(2)[1:-2]
        return f"{m.group(1)}{{{low},{max(int(low), RUN_LIMIT)}}}"

    bounded = _SINGLE_ATOM_REPEAT.sub(bound, pattern)
    try:
        width = sre_parse.parse(bounded).getwidth()[1]
    except (re.error, OverflowError, RecursionError):
        return None, ()
    if width >= 100_000:
        return None, ()
    return width, tuple(dict.fromkeys(m.group(1) for m in _SINGLE_ATOM_REPEAT.finditer(pattern) if m.group(1)))


def _gates(rule: Rule, macros: dict[str, str], where: str) -> tuple[tuple[frozenset[str], re.Pattern], ...]:
    """Split a word-keyword rule into its patterns, each with the rule keywords written in its (expanded) source.

    Sound when every keyword a match can contain comes from a literal of the pattern that matched, which holds
    for rules whose keywords are words (checked for every pattern by tests/core/test_safety_fuzz.py). Masking
    rules and rules with non-word keywords (digits, "@") keep the single scan.
    """
    if rule.action == "redact" or len(rule.patterns) < 2 or not rule.keywords:
        return ()
    if not all(len(k) >= 2 and k.replace(" ", "").replace("-", "").isalpha() for k in rule.keywords):
        return ()
    gates = []
    for raw in rule.patterns:
        source = _expand(raw, macros, where).lower()
        needed = frozenset(k for k in rule.keywords if k in source)
        if not needed:
            return ()
        gates.append((needed, re.compile(_expand(raw, macros, where))))
    return tuple(gates)


def _build_framing(raw: dict, macros: dict[str, str], where: str) -> Framing:
    names = ("meta", "past", "urgent")
    unknown = set(raw) - {"negation_cues", "negation_window_chars", *names, *(f"{n}_keywords" for n in names)}
    if unknown:
        raise SafetyRuleError(f"{where}: framing: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        cues = _as_tuple(raw["negation_cues"], "negation_cues", where)
        # A cue, then at most three more words, then the hit: "no chest pain", "denies fever, chest pain". A comma
        # straight after the cue ends it: in "no, I have chest pain" the "no" answers a question.
        # A cue followed by a subject ("No I have chest pain", "no my dad is not breathing") is an answer to a
        # question, not a negation of what follows.
        subject = r"(?!\s+(?:i|i['’]?m|i['’]?ve|my|he|she|we|they|his|her|our|their|it['’]?s)\b)"
        negation = [rf"(?:^|[^\w'’])(?:{'|'.join(cues)}){subject}(?:\s+[\w'’-]+(?:[\s,/]+[\w'’-]+){{0,2}})?[\s/:]*$"]
        parts = {k: _compile(list(_as_tuple(raw[k], k, where)), macros, re.IGNORECASE, f"{where}: {k}")
                 for k in ("meta", "past", "urgent")}  # fmt: skip
    except KeyError as exc:
        raise SafetyRuleError(f"{where}: framing: missing field {exc}") from exc
    keywords = {}
    for name in names:
        if f"{name}_keywords" in raw:
            found = _as_tuple(raw[f"{name}_keywords"], f"{name}_keywords", f"{where}: framing")
            if any(k != k.lower() for k in found):
                raise SafetyRuleError(f"{where}: framing: {name}_keywords must be lower case")
            keywords[name] = frozenset(found)
    return Framing(
        negation=_compile(negation, macros, re.IGNORECASE, f"{where}: negation_cues"),
        window_chars=int(raw.get("negation_window_chars", 40)),
        keywords=keywords,
        **parts,
    )


def build_ruleset(data: dict, files: tuple[str, ...], errors: tuple[str, ...] = ()) -> RuleSet:
    """Validate and compile rule data (the merged contents of the rule files).

    Args:
        data: Mapping with ``macros``, ``framing`` and ``rules`` (each rule a mapping).
        files: The files the data came from, for messages.
        errors: Problems already found (an ignored user file), carried into the result.

    Returns:
        The compiled rule set.

    Raises:
        SafetyRuleError: Naming the rule and file at fault.
    """
    where = " + ".join(files)
    macros = data.get("macros") or {}
    if not isinstance(macros, dict) or not all(isinstance(v, str) for v in macros.values()):
        raise SafetyRuleError(f"{where}: 'macros' must map names to regex strings")
    rules, seen = [], set()
    for raw in data.get("rules") or []:
        if not isinstance(raw, dict):
            raise SafetyRuleError(f"{where}: every rule must be a mapping, got {raw!r}")
        source = raw.get("source", "shipped")
        rule_where = f"{files[0] if source == 'shipped' else source}: rule {raw.get('id', '(no id)')!r}"
        if raw.get("id") in seen:
            raise SafetyRuleError(f"{rule_where}: duplicate id")
        seen.add(raw.get("id"))
        rules.append(_build_rule(raw, macros, rule_where))
    if not rules:
        raise SafetyRuleError(f"{where}: no rules")
    framing = _build_framing(data.get("framing") or {}, macros, where)
    disabled = frozenset(r.id for r in rules if not r.enabled)
    keywords = frozenset({k for r in rules for k in r.keywords}.union(*framing.keywords.values()))
    longer = sorted(k for k in keywords if len(k) > 1)
    return RuleSet(
        rules=tuple(rules),
        framing=framing,
        files=files,
        disabled=disabled,
        errors=errors,
        keyword_regex=re.compile(f"(?=({_trie(longer)}))") if longer else None,
        keywords=keywords,
    )


def _trie(words: list[str]) -> str:
    """Return a regex matching the longest of ``words`` at a position, factored as a trie (one branch per letter)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        # Longest first: the optional tail is greedy, so "head" wins over "hea" at the same position.
        return f"(?:{body})?" if ends else body

    return build(trie)
