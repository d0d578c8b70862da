"""Escape text for Markdown, so that model-written, uploaded or user-given text shows literally wherever it lands."""

# Every character that can start Markdown or Streamlit markup: emphasis, code, links and images, headings, lists,
# tables, HTML and entities, math ($), strikethrough (~), and Streamlit's :color[...] / :emoji: directives.
SPECIAL = "\\`*_{}[]()#+-.!|<>$~:&"
# Inside a container that already holds block structure (a quoted line, a list item), only inline markup is live:
# links and images need "[", HTML "<" or "&", emphasis and code the rest. Fewer escapes keep a transcript readable.
INLINE_SPECIAL = "\\`*_[]<>&~|"


def escape_markdown(text: str, special: str = SPECIAL) -> str:
    """Return ``text`` with every Markdown special character backslash-escaped and line breaks kept as breaks.

    Args:
        text: Any text (a model's answer, a file or model name from metadata, a run title).
        special: The characters to escape (``INLINE_SPECIAL`` inside a quote or list item).

    Returns:
        Markdown that renders as exactly ``text``: no link, image, HTML, heading or directive survives.
    """
    out = str(text)
    for ch in special:
        out = out.replace(ch, "\\" + ch)
    return out.replace("\r\n", "\n").replace("\n", "  \n")


def escape_inline(text: str) -> str:
    """Escape ``text`` for one line inside a list item or heading: white space folded, inline markup escaped."""
    return escape_markdown(" ".join(str(text).split()), INLINE_SPECIAL)
