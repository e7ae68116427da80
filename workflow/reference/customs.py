"""The customs export records feed: parse a CSV of export declarations (报关单) and store it.

Storage: one Redis hash (``keys.customs_records()``), declaration number -> JSON record, so a
verification reads the declarations it needs in one HMGET whatever the feed's size. An import
merges by number (a row replaces the stored record of its number, every other record stays):
a customs feed arrives as daily or monthly extracts, and an export once declared does not stop
having happened because the next extract leaves it out. ``replace=True`` makes the file the
whole feed instead (one MULTI/EXEC: readers see the old feed or the new one, never half).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.identifiers import (
    CUSTOMS_DECLARATION_HELP,
    CUSTOMS_DECLARATION_RE,
    is_country,
    is_currency,
    uscc_problem,
)
from workflow.money import MoneyFormatError, fmt, parse_amount
from workflow.reference.records import CustomsRecord, as_text
from workflow.reference.tabular import read_csv

# Column -> the header names accepted for it (Chinese as customs extracts print them, English).
COLUMNS: dict[str, tuple[str, ...]] = {
    "declaration_number": (
        "报关单号",
        "报关单编号",
        "海关编号",
        "declaration_number",
        "declaration no",
        "customs declaration number",
    ),
    "exporter_uscc": (
        "统一社会信用代码",
        "境内发货人统一社会信用代码",
        "出口商统一社会信用代码",
        "exporter_uscc",
        "uscc",
    ),
    "destination_country": (
        "运抵国",
        "运抵国(地区)",
        "目的国",
        "destination_country",
        "destination",
    ),
    "currency": ("币制", "币种", "currency"),
    "amount": ("金额", "总价", "申报金额", "amount", "declared_amount"),
    "export_date": ("出口日期", "export_date"),
}

_DATE_RE = re.compile(r"([0-9]{4})[-/]?([0-9]{1,2})[-/]?([0-9]{1,2})")
# Writes per pipeline round trip when a large feed is stored.
_CHUNK = 5000


@dataclass
class CustomsFile:
    """A parsed feed file: the good records by number, and each refused row's problem."""

    records: dict[str, CustomsRecord] = field(default_factory=dict)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, problem)


def _date(raw: str) -> date:
    found = _DATE_RE.fullmatch(raw)
    if not found or (len(raw) == 8) != raw.isdigit():
        raise ValueError
    return date(*(int(part) for part in found.groups()))


def parse_row(values: dict[str, str]) -> tuple[CustomsRecord | None, list[str]]:
    """One row as a record, or the problems of each bad column (named as in COLUMNS)."""
    problems: list[str] = []
    number = values["declaration_number"]
    if not CUSTOMS_DECLARATION_RE.fullmatch(number):
        problems.append(f"declaration_number {number!r}: {CUSTOMS_DECLARATION_HELP}")
    uscc = values["exporter_uscc"].upper()
    if problem := uscc_problem(uscc):
        problems.append(f"exporter_uscc {values['exporter_uscc']!r}: {problem}")
    country = values["destination_country"].upper()
    if not is_country(country):
        problems.append(
            f"destination_country {values['destination_country']!r}: "
            "not an ISO 3166-1 alpha-2 country code"
        )
    currency = values["currency"].upper()
    if not is_currency(currency):
        problems.append(f"currency {values['currency']!r}: not an ISO 4217 currency code")
    amount = Decimal(0)
    try:
        # Thousands separators are how spreadsheets print amounts; nothing else is guessed.
        amount = parse_amount(values["amount"].replace(",", ""))
        if amount <= 0:
            problems.append(f"amount {values['amount']!r}: must be greater than 0")
    except MoneyFormatError as exc:
        problems.append(f"amount {values['amount']!r}: {exc}")
    exported = date.min
    try:
        exported = _date(values["export_date"])
    except ValueError:
        problems.append(f"export_date {values['export_date']!r}: not a date (YYYY-MM-DD)")
    if problems:
        return None, problems
    return CustomsRecord(number, uscc, country, currency, amount, exported), []


def parse_customs_csv(raw: bytes) -> CustomsFile:
    """Every row of the file checked: good rows kept, bad ones reported with their line.
    A number given on two rows keeps the first and refuses the second (which is right is
    for the operator to say). Raises TabularError if the file cannot be read at all."""
    parsed = CustomsFile()
    first_line: dict[str, int] = {}
    for row in read_csv(raw, COLUMNS):
        record, problems = parse_row(row.values)
        if record is not None and record.declaration_number in first_line:
            seen = first_line[record.declaration_number]
            problems = [f"declaration_number {record.declaration_number} repeats line {seen}"]
            record = None
        if record is None:
            parsed.rejected.append((row.line, "; ".join(problems)))
            continue
        first_line[record.declaration_number] = row.line
        parsed.records[record.declaration_number] = record
    return parsed


def encode_record(record: CustomsRecord) -> str:
    return json.dumps(
        {
            "exporter_uscc": record.exporter_uscc,
            "destination_country": record.destination_country,
            "currency": record.currency,
            "amount": fmt(record.amount),
            "export_date": record.export_date.isoformat(),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def decode_record(number: str, raw: str | bytes | None) -> CustomsRecord | None:
    if raw is None:
        return None
    data = json.loads(as_text(raw))
    return CustomsRecord(
        declaration_number=number,
        exporter_uscc=data["exporter_uscc"],
        destination_country=data["destination_country"],
        currency=data["currency"],
        amount=Decimal(data["amount"]),
        export_date=date.fromisoformat(data["export_date"]),
    )


@dataclass(frozen=True)
class CustomsImport:
    """What an import changed: records new to the feed, changed, unchanged, and (replace
    only) removed; ``total`` is the feed's size afterwards."""

    added: int
    changed: int
    unchanged: int
    removed: int
    total: int


def store_customs(
    redis: Any, records: dict[str, CustomsRecord], *, replace: bool = False, source: str = ""
) -> CustomsImport:
    """Merge ``records`` into the feed by number (or make them the whole feed), in one
    MULTI/EXEC, and note the import in the feed's description (which turns the
    CUSTOMS_RECORD_NOT_FOUND check on in the "auto" mode)."""
    numbers = sorted(records)
    encoded = {n: encode_record(records[n]) for n in numbers}
    before: dict[str, str | None] = {}
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start : start + _CHUNK]
        stored = redis.hmget(keys.customs_records(), chunk)
        before.update(zip(chunk, (None if v is None else as_text(v) for v in stored), strict=True))
    added = sum(1 for n in numbers if before[n] is None)
    unchanged = sum(1 for n in numbers if before[n] == encoded[n])
    size_before = int(redis.hlen(keys.customs_records()))
    pipe = redis.pipeline(transaction=True)
    if replace:
        pipe.delete(keys.customs_records())
    items = list(encoded.items())
    for start in range(0, len(items), _CHUNK):
        pipe.hset(keys.customs_records(), mapping=dict(items[start : start + _CHUNK]))
    pipe.hset(
        keys.customs_feed(),
        mapping={
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source,
            "rows": str(len(records)),
            "mode": "replace" if replace else "merge",
        },
    )
    pipe.hlen(keys.customs_records())
    total = int(pipe.execute()[-1])
    removed = max(size_before - (len(numbers) - added), 0) if replace else 0
    return CustomsImport(
        added=added,
        changed=len(numbers) - added - unchanged,
        unchanged=unchanged,
        removed=removed,
        total=total,
    )
