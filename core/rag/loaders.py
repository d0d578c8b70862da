"""Read TXT/Markdown, PDF, JSON/JSONL and CSV files into text units (a PDF page, a JSON record, a CSV row, a file).

Every failure is a :class:`LoadError` with a message written for the user; callers report it per file and go on.
"""

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import WorkbenchError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".pdf", ".json", ".jsonl", ".csv"}
DEFAULT_MAX_FILE_MB = 50.0
# Fields tried, in order, as a record's title (prepended to its text) when the text field is chosen automatically.
WESTERN_PUNCTUATION = set("°±·–—‘’“”…€£§©®µ×÷«»¿¡ ")
TITLE_FIELDS = ("title", "term", "name", "question", "heading")


class LoadError(WorkbenchError):
    """A file cannot be read into text; the message says why and what to do."""


@dataclass(frozen=True)
class Unit:
    """A piece of a document with its own coordinates: PDF page (1-based) or record number (1-based) or neither."""

    text: str
    page: int | None = None
    record: int | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LoadOptions:
    """How structured files are read."""

    text_field: str | None = None  # JSON key / CSV column holding the text; None: "text", else the longest field
    max_file_mb: float = DEFAULT_MAX_FILE_MB


@dataclass(frozen=True)
class LoadedFile:
    """A file's units plus notes for the per-file status (encoding found, pages skipped, field chosen)."""

    units: list[Unit]
    format: str
    notes: list[str] = field(default_factory=list)


def safe_name(name: str) -> str:
    """Turn an uploaded file name into a harmless base name (no folders, no ``..``, no control characters).

    Args:
        name: The name as the browser or user gave it, e.g. ``../../etc/passwd.txt``.

    Returns:
        A name such as ``passwd.txt``; never empty, never starting with a dot.
    """
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    base = base.strip().lstrip(".").strip()
    return base[:200] or "unnamed"


def load_file(path: Path, options: LoadOptions | None = None) -> LoadedFile:
    """Read one file into text units.

    Args:
        path: The file.
        options: Text field for JSON/CSV and the size limit.

    Returns:
        The units and notes.

    Raises:
        LoadError: For an unsupported type, an empty, binary, oversized, corrupt or encrypted file, invalid
            JSON/CSV, or a missing text field.
    """
    options = options or LoadOptions()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise LoadError(f"Unsupported file type '{suffix or path.name}'; supported: {supported}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(f"Cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError("The file is empty (0 bytes)")
    if size > options.max_file_mb * 1024 * 1024:
        raise LoadError(f"The file is {size / 1024 / 1024:.1f} MB, over the {options.max_file_mb:g} MB limit")
    if suffix == ".pdf":
        return _load_pdf(path)
    text, encoding = decode_text(path.read_bytes())
    notes = [] if encoding in ("utf-8", "ascii") else [f"decoded as {encoding}"]
    if suffix in TEXT_SUFFIXES:
        if not text.strip():
            raise LoadError("The file holds no text (only whitespace)")
        return LoadedFile([Unit(text)], "markdown" if suffix != ".txt" else "text", notes)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        records = data if isinstance(data, list) else [data]
        return _records(records, options, "json", notes)
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LoadError(f"Invalid JSON on line {number}: {exc.msg}") from exc
        return _records(records, options, "jsonl", notes)
    return _load_csv(text, options, notes)


def decode_text(raw: bytes) -> tuple[str, str]:
    """Decode bytes whose encoding is unknown: BOMs first, then UTF-8, then detection (charset-normalizer).

    Args:
        raw: File content.

    Returns:
        (text, encoding name).

    Raises:
        LoadError: If the bytes look binary (not text in any encoding).
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(encoding), encoding
    sample = raw[:4096]
    if sample.count(0) > len(sample) // 10:
        # ASCII-range text in UTF-16 without a BOM has a zero in every other byte; other NULs mean binary data.
        encoding = _utf16_without_bom(sample)
        if encoding is None:
            raise LoadError("The file looks binary, not text (is it an image or archive with a text extension?)")
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise LoadError(f"The file looks like {encoding} but does not decode: {exc.reason}") from exc
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    western = _as_western(raw)
    if western is not None:
        return western, "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None or best.encoding is None:
        raise LoadError("The file looks binary, not text: no text encoding fits its bytes")
    text = str(best)
    controls = sum(1 for ch in text[:4096] if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t\f")
    if controls > len(text[:4096]) // 20:
        raise LoadError("The file looks binary, not text (too many control characters)")
    return text, best.encoding


def _as_western(raw: bytes) -> str | None:
    """Decode as Windows-1252 when the result reads like Western European text, else None.

    Detectors often pick another single-byte code page for short Western texts (``é`` is 0xE9 in cp1250 and
    cp1252 alike, and one accented word can make Big5 look as likely). Western text is mostly ASCII letters with a
    few accented ones, which tells it apart from, say, Cyrillic in cp1251, where almost every letter is non-ASCII.
    """
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        return None
    non_ascii = [ch for ch in text if ord(ch) > 127]
    letters = sum(ch.isalpha() for ch in text)
    if not letters or len(non_ascii) > 0.2 * letters:
        return None
    if all(ch.isalpha() or ch in WESTERN_PUNCTUATION for ch in non_ascii):
        return text
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > len(odd) * 0.4 and even.count(0) < len(even) * 0.1:
        return "utf-16-le"
    if even.count(0) > len(even) * 0.4 and odd.count(0) < len(odd) * 0.1:
        return "utf-16-be"
    return None


def _load_pdf(path: Path) -> LoadedFile:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password and open normally; others need a password.
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, PdfReadError) as exc:
                raise LoadError(f"The PDF is encrypted and cannot be opened: {exc}") from exc
            if not opened:
                raise LoadError("The PDF is password-protected; remove the password and upload it again")
        units, empty = [], []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                units.append(Unit(text, page=number))
            else:
                empty.append(number)
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise LoadError(f"The PDF is corrupt or not a PDF ({type(exc).__name__}: {exc})") from exc
    if not units:
        raise LoadError("The PDF has no text layer (scanned images?); OCR is not supported, so nothing was indexed")
    notes = [f"{len(units)} pages with text"]
    if empty:
        notes.append(f"pages without text skipped: {', '.join(map(str, empty[:20]))}")
    return LoadedFile(units, "pdf", notes)


def _records(records: list, options: LoadOptions, fmt: str, notes: list[str]) -> LoadedFile:
    if not records:
        raise LoadError("The file holds no records")
    if not all(isinstance(r, dict) for r in records):
        raise LoadError('Expected a list of objects (one object per document), e.g. [{"text": "..."}]')
    return _units_from_rows(records, options, fmt, notes, kind="field")


def _load_csv(text: str, options: LoadOptions, notes: list[str]) -> LoadedFile:
    try:
        sample = text[:8192]
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.count("\n") else csv.excel
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as exc:
        raise LoadError(f"Invalid CSV: {exc}") from exc
    if not rows:
        raise LoadError("The CSV has a header but no rows")
    return _units_from_rows(rows, options, "csv", notes, kind="column")


def _units_from_rows(rows: list[dict], options: LoadOptions, fmt: str, notes: list[str], kind: str) -> LoadedFile:
    keys = list(dict.fromkeys(k for row in rows for k in row if k is not None))
    field_name, title = options.text_field, None
    if field_name is not None:
        if field_name not in keys:
            raise LoadError(f"No {kind} named '{field_name}'; the {kind}s are: {', '.join(map(str, keys))}")
    elif "text" in keys:
        field_name = "text"
        title = next((t for t in TITLE_FIELDS if t in keys), None)
    else:
        lengths = {k: sum(len(str(r.get(k) or "")) for r in rows) for k in keys if isinstance(rows[0].get(k), str)}
        if not lengths:
            raise LoadError(f"No text {kind} found; choose one of: {', '.join(map(str, keys))}")
        field_name = max(lengths, key=lengths.get)
        title = next((t for t in TITLE_FIELDS if t in keys and t != field_name), None)
        notes.append(f"text {kind} chosen automatically: '{field_name}'" + (f" (title: '{title}')" if title else ""))
    units, skipped = [], 0
    for number, row in enumerate(rows, start=1):
        value = row.get(field_name)
        body = value if isinstance(value, str) else ("" if value is None else json.dumps(value, ensure_ascii=False))
        if title and isinstance(row.get(title), str) and row[title].strip():
            body = f"{row[title].strip()}\n{body}"
        if not body.strip():
            skipped += 1
            continue
        metadata = {str(k): v for k, v in row.items() if k not in (field_name, None)}
        units.append(Unit(body, record=number, metadata=metadata))
    if not units:
        raise LoadError(f"Every record has an empty '{field_name}' {kind}")
    if skipped:
        notes.append(f"{skipped} records with an empty '{field_name}' skipped")
    return LoadedFile(units, fmt, notes)
