"""Reading a whitelist programme's member list (统保名单) from a CSV or XLSX file."""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow.identifiers import printable, uscc_check_character, uscc_fault
from workflow.reference.tabular import header_key

# Header cells naming the columns, compared after trimming and case folding.
USCC_HEADERS = ("统一社会信用代码", "uscc")
NAME_HEADERS = ("企业名称", "name")
# A title row or two ("2026年宁波统保名单") may come before the header row.
HEADER_SEARCH_ROWS = 10
# Progress is reported every this many rows (a callback per row would cost more than the row).
PROGRESS_EVERY = 1000

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Rejection kinds (Rejected.kind); the words are Rejected.reason.
EMPTY = "empty"
LENGTH = "length"
FORMAT = "format"
CHECK = "check"
SEPARATORS = "separators"
NUMBER = "number"
DUPLICATE = "duplicate"


class WhitelistFileError(ValueError):
    """The file cannot be read as a member list at all (nothing of it is imported)."""


@dataclass(frozen=True)
class Rejected:
    """A data row left out of the import, with its line (1-based, the header's counted)."""

    line: int
    value: str
    name: str
    kind: str
    reason: str


@dataclass
class MemberList:
    """The valid USCCs of a file, in file order, and the rows left out."""

    members: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    header_line: int = 0
    rows: int = 0
    encoding: str | None = None
    kind: str = "csv"


def _clean(value: str) -> str:
    """Full-width letters and digits (as Chinese input methods type them) become ASCII;
    surrounding spaces and invisible marks (a BOM, zero-width spaces) go."""
    text = unicodedata.normalize("NFKC", value)
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and _clean(cell) == "")


def _column(header: list[Any], names: tuple[str, ...], line: int) -> int | None:
    # Compared as the customs feed compares its headers (case, spaces, brackets ignored), and
    # without invisible marks (a BOM left by an explicit --encoding utf-8, zero-width spaces).
    wanted = {header_key(name) for name in names}
    found = [
        i
        for i, cell in enumerate(header)
        if isinstance(cell, str) and header_key(_clean(cell)) in wanted
    ]
    if len(found) > 1:
        raise WhitelistFileError(
            f"line {line}: {len(found)} columns are headed {' / '.join(names)}; keep one"
        )
    return found[0] if found else None


def _cell_text(row: tuple[Any, ...] | list[Any], index: int | None) -> Any:
    if index is None or index >= len(row):
        return None
    return row[index]


def _shown(value: Any) -> str:
    text = "" if value is None else str(value)
    return printable(text if len(text) <= 40 else text[:40] + "…")


class MemberFile:
    """One member-list file, opened and sized; ``read`` validates its rows."""

    def __init__(self, path: Path, encoding: str | None = None):
        self.path = path
        try:
            with path.open("rb") as handle:
                magic = handle.read(8)
        except OSError as exc:
            raise WhitelistFileError(f"cannot read the file: {exc.strerror or exc}") from None
        if magic.startswith(_XLS_MAGIC):
            raise WhitelistFileError(
                "an old Excel .xls workbook; save it as .xlsx (or CSV) and import that"
            )
        self.kind = "xlsx" if magic.startswith(_XLSX_MAGIC) else "csv"
        self.encoding: str | None = None
        if self.kind == "xlsx":
            if encoding:
                raise WhitelistFileError("--encoding applies to CSV files, not to XLSX")
            self._open_xlsx()
        else:
            self._open_csv(encoding)

    # -- opening ---------------------------------------------------------------------------

    def _open_csv(self, encoding: str | None) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise WhitelistFileError(f"cannot read the file: {exc.strerror or exc}") from None
        self.encoding, self._text = decode_csv(raw, encoding)
        first = next((line for line in self._text.splitlines() if line.strip()), "")
        # Excel's "Unicode text" export separates with tabs, some locales with semicolons.
        self._delimiter = next((d for d in "\t;" if d in first and "," not in first), ",")
        self.rows_estimate = self._text.count("\n") + (not self._text.endswith("\n"))

    def _open_xlsx(self) -> None:
        import openpyxl

        try:
            # read_only streams the sheet instead of building every cell: 100,000 rows in
            # seconds; data_only reads a formula's last computed value.
            self._book = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise WhitelistFileError(f"not a readable XLSX workbook: {exc}") from None
        sheet = self._book.worksheets[0]
        self.rows_estimate = sheet.max_row or 0
        # A workbook written by some tools records a wrong size; read every row regardless.
        sheet.reset_dimensions()
        self._sheet = sheet

    def close(self) -> None:
        if self.kind == "xlsx":
            self._book.close()

    # -- rows ------------------------------------------------------------------------------

    def _rows(self) -> Iterator[tuple[int, list[Any] | tuple[Any, ...]]]:
        """(line number, cells) of every row, blank ones included."""
        if self.kind == "xlsx":
            yield from enumerate(self._sheet.iter_rows(min_row=1, values_only=True), start=1)
            return
        reader = csv.reader(io.StringIO(self._text, newline=""), delimiter=self._delimiter)
        line = 1  # where the next record starts (a quoted cell may span lines)
        try:
            for row in reader:
                start, line = line, reader.line_num + 1
                yield start, row
        except csv.Error as exc:
            raise WhitelistFileError(f"line {line}: not valid CSV: {exc}") from None

    def read(self, progress: Callable[[int], None] | None = None) -> MemberList:
        """Validate every row; raises WhitelistFileError when there is no usable header."""
        try:
            return self._read(progress)
        finally:
            self.close()

    def _read(self, progress: Callable[[int], None] | None) -> MemberList:
        result = MemberList(encoding=self.encoding, kind=self.kind)
        rows = self._rows() if progress is None else _counted(self._rows(), progress)
        uscc_col, name_col = self._header(rows, result)
        first_line: dict[str, int] = {}
        for line, row in rows:
            value = _cell_text(row, uscc_col)
            if _blank(value) and all(_blank(cell) for cell in row):
                continue
            result.rows += 1
            name = _cell_text(row, name_col)
            name = _clean(name) if isinstance(name, str) else ("" if name is None else str(name))
            rejection = _check(value, line, first_line)
            if rejection is None:
                code = _normalise(value)
                first_line[code] = line
                result.members.append(code)
            else:
                kind, reason = rejection
                result.rejected.append(Rejected(line, _shown(value), printable(name), kind, reason))
        return result

    def _header(
        self, rows: Iterator[tuple[int, Any]], result: MemberList
    ) -> tuple[int, int | None]:
        seen: list[tuple[int, list[str]]] = []
        for line, row in rows:
            cells = [_clean(c) if isinstance(c, str) else "" for c in row]
            if not any(cells):
                continue
            uscc_col = _column(list(row), USCC_HEADERS, line)
            if uscc_col is not None:
                result.header_line = line
                return uscc_col, _column(list(row), NAME_HEADERS, line)
            seen.append((line, [c for c in cells if c]))
            if len(seen) == HEADER_SEARCH_ROWS:
                break
        if not seen:
            raise WhitelistFileError("the file is empty: no header row and no members")
        line, cells = seen[0]
        found = ", ".join(printable(c) for c in cells[:12]) or "none"
        raise WhitelistFileError(
            f"no USCC column: a header row needs a column headed {' or '.join(USCC_HEADERS)}"
            f" (and optionally {' or '.join(NAME_HEADERS)}); line {line} holds: {found}"
        )


def _counted(rows: Iterator[Any], progress: Callable[[int], None]) -> Iterator[Any]:
    """``rows``, calling ``progress(n)`` after every PROGRESS_EVERY rows and at the end."""
    pending = 0
    for row in rows:
        yield row
        pending += 1
        if pending == PROGRESS_EVERY:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def _normalise(value: Any) -> str:
    return _clean(value).upper() if isinstance(value, str) else str(value)


def _check(value: Any, line: int, first_line: dict[str, int]) -> tuple[str, str] | None:
    """(kind, reason) of a bad USCC cell, or None when it is a new valid member."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        if isinstance(value, float) and not value.is_integer():
            return FORMAT, "a number, not a USCC"
        # Excel keeps 15 significant digits: an 18-digit code stored as a number has lost
        # its last digits, so even a passing check would be luck.
        return NUMBER, "stored as a number (Excel keeps 15 digits); format the column as text"
    if _blank(value):
        return EMPTY, "empty USCC"
    if not isinstance(value, str):
        return FORMAT, f"not text ({type(value).__name__})"
    code = _normalise(value)
    fault = uscc_fault(code)
    if fault == LENGTH:
        return LENGTH, f"wrong length: {len(code)} characters, a USCC has 18"
    if fault == CHECK:
        expected = uscc_check_character(code)
        return CHECK, f"bad check character: ends in {code[-1]}, the first 17 call for {expected}"
    if fault == SEPARATORS:
        return SEPARATORS, "spaces or hyphens inside the code"
    if fault is not None:
        return FORMAT, "characters a USCC cannot hold (digits and A-Y without I, O, S, V, Z)"
    if code in first_line:
        return DUPLICATE, f"duplicate of line {first_line[code]}"
    return None


def decode_csv(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(encoding, text) of a CSV file: the given encoding, else UTF-8 (with or without BOM)
    when the bytes are valid UTF-8, else GB18030 (what Chinese Excel saves as "CSV")."""
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise WhitelistFileError(f"unknown encoding {printable(encoding)}") from None
        if name == "utf-8" and raw.startswith(codecs.BOM_UTF8):
            name = "utf-8-sig"
        candidates = [name]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    elif raw.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    else:
        candidates = ["utf-8", "gb18030"]
    for name in candidates:
        try:
            return name, raw.decode(name)
        except UnicodeDecodeError as exc:
            failure = exc
    line = raw[: failure.start].count(b"\n") + 1
    tried = " nor ".join(candidates)
    raise WhitelistFileError(
        f"line {line}: the file is not {tried} text (byte {failure.start}); give --encoding"
    )
