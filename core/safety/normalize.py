"""Fold text before screening so look-alike characters stop being a bypass, keeping a map back to the original.

Both layers read the folded text: NFKC (fullwidth and mathematical letters, ligatures), zero-width and combining
characters removed ("c\u0301hest" and "ch\u200best" read "chest"), and Latin look-alikes from other scripts
(Cyrillic "р", Greek "ο"), which NFKC does not fold, mapped to the Latin letter. The look-alike table comes from
Unicode's confusables data as packaged by ``confusable_homoglyphs``. Hit spans are mapped back to the original text,
so redaction and highlighting still apply to what the user typed.
"""

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Format characters that render as nothing (zero-width space / joiners, word joiner, BOM, soft hyphen, ...).
_INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u200b\u200c\u200d\u200e"
                       "\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
                       "\u3164\ufeff\uffa0")  # fmt: skip


@lru_cache(maxsize=1)
def _lookalikes() -> dict[str, str]:
    """Map each single non-Latin character that Unicode lists as confusable with an ASCII letter to that letter."""
    import confusable_homoglyphs
    from confusable_homoglyphs import categories

    data = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text(encoding="utf-8"))
    table = {}
    for char, entries in data.items():
        if len(char) != 1 or char.isascii() or categories.alias(char) in ("LATIN", "COMMON"):
            continue
        for entry in entries:
            if len(entry["c"]) == 1 and entry["c"].isascii() and entry["c"].isalpha():
                table[char] = entry["c"]
                break
    return table


@lru_cache(maxsize=65536)
def _fold_char(char: str) -> str:
    if char in _INVISIBLE:
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.combining(part):
            continue
        out.append(_lookalikes().get(part, part))
    return unicodedata.normalize("NFC", "".join(out))


@dataclass(frozen=True)
class Folded:
    """A folded text; ``origin[i]`` is the index in the original of folded character ``i`` (None: identical)."""

    text: str
    original: str
    origin: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the folded text back to the original (covering every original character it came from)."""
        if self.origin is None or start < 0:
            return start, end
        if start >= len(self.origin):
            return len(self.original), len(self.original)
        return self.origin[start], (self.origin[end - 1] + 1 if end > start else self.origin[start])


def fold(text: str) -> Folded:
    """Fold ``text`` for screening (see the module docstring).

    ASCII text, almost every message, is returned as it is without a per-character pass.

    Args:
        text: What the user typed, a model answer or a passage.

    Returns:
        The folded text with its map back to the original.
    """
    if text.isascii():
        return Folded(text, text)
    table = {c: _fold_char(c) for c in set(text) if not c.isascii()}
    changed = {c: f for c, f in table.items() if f != c}
    if not changed:
        return Folded(text, text)
    folded = text.translate({ord(c): f for c, f in changed.items()})
    if all(len(f) == 1 for f in changed.values()):
        return Folded(folded, text)  # one character for one: the offsets did not move
    origin = tuple(i for i, c in enumerate(text) for _ in range(len(changed.get(c, c))))
    return Folded(folded, text, origin)
