"""Read TXT/Markdown, PDF, JSON/JSONL and CSV files into text units (a PDF page, a JSON record, a CSV row, a file).

Every failure the loaders know is a :class:`LoadError` with a message written for the user; callers report it
per file and go on (ingest turns any other exception of one file into that file's error as well).
"""

import csv
import hashlib
import io
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.config import IngestConfig
from core.errors import WorkbenchError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".pdf", ".json", ".jsonl", ".csv"}
MAX_JSON_DEPTH = 64  # deeper records are refused: writing them back (docs.jsonl) could hit Python's recursion limit
READ_BLOCK = 1 << 20
WESTERN_PUNCTUATION = set("°±·–—‘’“”…€£§©®µ×÷«»¿¡ ")
# Fields tried, in order, as a record's title (prepended to its text) when the text field is chosen automatically.
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


def _default(name: str):
    return IngestConfig.spec(name).default


@dataclass(frozen=True)
class LoadOptions:
    """How structured files are read, and the limits that refuse a file before it costs too much."""

    text_field: str | None = None  # JSON key / CSV column holding the text; None: "text", else the longest field
    max_file_mb: float = _default("max_file_mb")
    max_pdf_pages: int = _default("max_pdf_pages")
    max_records: int = _default("max_records")
    max_text_mb: float = _default("max_text_mb")

    @classmethod
    def from_config(cls, config: IngestConfig) -> "LoadOptions":
        """Return the options an ingest config asks for."""
        return cls(config.text_field, config.max_file_mb, config.max_pdf_pages, config.max_records,
                   config.max_text_mb)  # fmt: skip

    @property
    def max_text_chars(self) -> int:
        """The extracted-text limit in characters."""
        return int(self.max_text_mb * 1024 * 1024)


@dataclass(frozen=True)
class LoadedFile:
    """A file's units plus notes for the per-file status (encoding found, pages skipped, field chosen)."""

    units: list[Unit]
    format: str
    notes: list[str] = field(default_factory=list)


def read_file(path: Path, max_file_mb: float) -> tuple[bytes, str]:
    """Read a file once, in blocks, computing its sha256 on the way; refuse it if it is over ``max_file_mb``.

    The size is checked with ``stat()`` before anything is read, and again while reading (a file that grows).

    Args:
        path: The file.
        max_file_mb: The size limit in MB.

    Returns:
        (content, sha256 hex digest).

    Raises:
        LoadError: If the file cannot be read, is empty or is over the limit.
    """
    check_size(path, max_file_mb)
    max_bytes = max_file_mb * 1024 * 1024
    digest, blocks, total = hashlib.sha256(), [], 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(READ_BLOCK):
                total += len(block)
                if total > max_bytes:
                    raise LoadError(f"The file grew past the {max_file_mb:g} MB limit while being read")
                digest.update(block)
                blocks.append(block)
    except OSError as exc:
        raise LoadError(f"Cannot read the file: {exc.strerror or exc}") from exc
    return b"".join(blocks), digest.hexdigest()


def check_size(path: Path, max_file_mb: float) -> int:
    """Refuse an empty file or one over ``max_file_mb`` from its ``stat()`` alone (nothing is read).

    Returns:
        The size in bytes.

    Raises:
        LoadError: If the file cannot be stat'ed, is empty or is over the limit.
    """
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise LoadError(f"Cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError("The file is empty (0 bytes)")
    if size > max_file_mb * 1024 * 1024:
        raise LoadError(f"The file is {size / 1024 / 1024:.1f} MB, over the {max_file_mb:g} MB limit (max_file_mb)")
    return size


def load_file(path: Path, options: LoadOptions | None = None, data: bytes | None = None) -> LoadedFile:
    """Read one file into text units.

    Args:
        path: The file (its suffix chooses the format).
        options: Text field for JSON/CSV and the limits.
        data: The file's content when the caller has already read it (see :func:`read_file`); read otherwise.

    Returns:
        The units and notes.

    Raises:
        LoadError: For an unsupported type, an empty, binary, oversized, corrupt or encrypted file, invalid
            JSON/CSV, a missing text field, or more pages, records or text than the limits allow.
    """
    options = options or LoadOptions()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise LoadError(f"Unsupported file type '{suffix or path.name}'; supported: {supported}")
    if data is None:
        data, _ = read_file(path, options.max_file_mb)
    elif not data:
        raise LoadError("The file is empty (0 bytes)")
    if suffix == ".pdf":
        return _load_pdf(data, options)
    text, encoding = decode_text(data)
    notes = [] if encoding in ("utf-8", "ascii") else [f"decoded as {encoding}"]
    if suffix in TEXT_SUFFIXES:
        _check_text(len(text), options)
        if not text.strip():
            raise LoadError("The file holds no text (only whitespace)")
        return LoadedFile([Unit(text)], "markdown" if suffix != ".txt" else "text", notes)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError as exc:
            raise LoadError(f"The JSON is nested too deeply to read (at most {MAX_JSON_DEPTH} levels)") from exc
        records = data if isinstance(data, list) else [data]
        _check_records(len(records), options)
        return _records(records, options, "json", notes)
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            _check_records(len(records) + 1, options)
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LoadError(f"Invalid JSON on line {number}: {exc.msg}") from exc
            except RecursionError as exc:
                raise LoadError(f"Line {number} is nested too deeply to read (max {MAX_JSON_DEPTH} levels)") from exc
        return _records(records, options, "jsonl", notes)
    return _load_csv(text, options, notes)


def _check_records(count: int, options: LoadOptions) -> None:
    if count > options.max_records:
        raise LoadError(f"The file holds more than {options.max_records:,} records, over the limit (max_records); "
                        "split it or raise the limit")  # fmt: skip


def _check_text(chars: int, options: LoadOptions) -> None:
    if chars > options.max_text_chars:
        raise LoadError(f"The file holds more than {options.max_text_mb:g} MB of text, over the limit (max_text_mb); "
                        "split it or raise the limit")  # fmt: skip


def _depth(value) -> int:
    """Nesting depth of a decoded JSON value, without recursion (deep input must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


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
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError as exc:  # an odd byte count in UTF-16, invalid bytes after a UTF-8 BOM
                name = "UTF-8" if encoding == "utf-8-sig" else "UTF-16"
                raise LoadError(f"The file starts with a {name} byte-order mark but is not valid {name} "
                                f"({exc.reason} at byte {exc.start}); save it again as {name}") from exc  # fmt: skip
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


def _load_pdf(data: bytes, options: LoadOptions) -> LoadedFile:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password and open normally; others need a password.
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, PdfReadError) as exc:
                raise LoadError(f"The PDF is encrypted and cannot be opened: {exc}") from exc
            if not opened:
                raise LoadError("The PDF is password-protected; remove the password and upload it again")
        n_pages = len(reader.pages)
        if n_pages > options.max_pdf_pages:
            raise LoadError(f"The PDF has {n_pages:,} pages, over the limit of {options.max_pdf_pages:,} "
                            "(max_pdf_pages); split it or raise the limit")  # fmt: skip
        units, empty, chars = [], [], 0
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            chars += len(text)
            _check_text(chars, options)  # page by page: a small PDF can inflate to far more text than its size
            if text:
                units.append(Unit(text, page=number))
            else:
                empty.append(number)
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
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
    for number, record in enumerate(records, start=1):
        if _depth(record) > MAX_JSON_DEPTH:
            raise LoadError(f"Record {number} is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")
    return _units_from_rows(records, options, fmt, notes, kind="field")


def _load_csv(text: str, options: LoadOptions, notes: list[str]) -> LoadedFile:
    try:
        sample = text[:8192]
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.count("\n") else csv.excel
    except csv.Error:
        dialect = csv.excel
    rows = []
    try:
        for row in csv.DictReader(io.StringIO(text), dialect=dialect):
            _check_records(len(rows) + 1, options)
            rows.append(row)
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
    units, skipped, chars = [], 0, 0
    for number, row in enumerate(rows, start=1):
        value = row.get(field_name)
        body = value if isinstance(value, str) else ("" if value is None else json.dumps(value, ensure_ascii=False))
        if title and isinstance(row.get(title), str) and row[title].strip():
            body = f"{row[title].strip()}\n{body}"
        if not body.strip():
            skipped += 1
            continue
        chars += len(body)
        _check_text(chars, options)
        metadata = {str(k): v for k, v in row.items() if k not in (field_name, None)}
        units.append(Unit(body, record=number, metadata=metadata))
    if not units:
        raise LoadError(f"Every record has an empty '{field_name}' {kind}")
    if skipped:
        notes.append(f"{skipped} records with an empty '{field_name}' skipped")
    return LoadedFile(units, fmt, notes)
