"""Reading operators' CSV feeds: UTF-8 or GB18030, Chinese or English headers, numbered rows."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

# Excel on a Chinese Windows saves "CSV" in GB18030 (GBK); everything else writes UTF-8, often
# with a byte-order mark. Nothing else is guessed: a file in neither is refused, not garbled.
ENCODINGS = ("utf-8-sig", "gb18030")


class TabularError(ValueError):
    """The file as a whole cannot be read (encoding, missing columns); nothing is imported."""


@dataclass(frozen=True)
class Row:
    """One data row: the file's line it starts on (the first line is 1) and its values by
    column name (the caller's names, whatever the header said)."""

    line: int
    values: dict[str, str]


def decode_text(raw: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read in (UTF-8 first, then GB18030)."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise TabularError("the file is neither UTF-8 nor GB18030 text")


def header_key(name: str) -> str:
    """A header cell as compared with the known names: full-width forms folded (NFKC), case,
    spaces, underscores, hyphens and brackets ignored ("运抵国（地区）" = "运抵国地区")."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if not ch.isspace() and ch not in "_-()[]")


def map_header(header: list[str], columns: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Each wanted column's position, from its accepted header names (any language).
    Raises TabularError naming the columns missing or given twice; other columns are ignored."""
    wanted = {header_key(alias): name for name, aliases in columns.items() for alias in aliases}
    positions: dict[str, int] = {}
    twice: list[str] = []
    for position, cell in enumerate(header):
        name = wanted.get(header_key(cell))
        if name is None:
            continue
        if name in positions:
            twice.append(name)
        positions.setdefault(name, position)
    problems = []
    missing = [name for name in columns if name not in positions]
    if missing:
        problems.append(
            "missing column(s): "
            + "; ".join(f"{name} ({' / '.join(columns[name])})" for name in missing)
        )
    if twice:
        problems.append(f"column(s) given twice: {', '.join(twice)}")
    if problems:
        raise TabularError(", ".join(problems))
    return positions


def read_csv(raw: bytes, columns: Mapping[str, tuple[str, ...]]) -> Iterator[Row]:
    """The data rows of a CSV file whose first non-blank line is its header. Blank lines are
    skipped; values are stripped; a short row's missing cells are "". Raises TabularError
    when the file cannot be read or lacks a column (the header's problems before any row)."""
    text, _encoding = decode_text(raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    positions: dict[str, int] | None = None
    line = 1  # the line the next record starts on
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TabularError(f"line {line}: not readable as CSV ({exc})") from None
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        if positions is None:
            positions = map_header(record, columns)
            continue
        yield Row(
            start,
            {
                name: record[pos].strip() if pos < len(record) else ""
                for name, pos in positions.items()
            },
        )
    if positions is None:
        raise TabularError("the file has no header row")
