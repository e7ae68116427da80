"""Dates written relative to the load day ("today-14"): the demo data stays valid on any day."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from workflow.reference.file import DATE_FIELDS

# "today", "today+60", "today-14": N whole days after or before the day the file is loaded.
RELATIVE_DATE = re.compile(r"today(?:([+-])(\d{1,6}))?")
# Scanning left to right, every match starts at an opening quote, because outside strings JSON
# has no quote characters. A date field's key and its "today..." value match as one pair; any
# other string (escapes included) matches whole and is left alone, so a buyer named "today"
# stays "today".
_DATE_KEYS = "|".join(sorted(DATE_FIELDS))
_TOKEN = re.compile(
    rf'(?P<key>"(?:{_DATE_KEYS})"\s*:\s*)"(?P<value>today[+\-0-9]*)"'
    r'|"(?:[^"\\]|\\.)*"'
)


def resolve_relative_date(value: str, today: date) -> str | None:
    """The ISO date ``value`` ("today", "today+N", "today-N") names, or None if it is no such
    (or falls outside the years 1-9999, which the file's date check then reports)."""
    match = RELATIVE_DATE.fullmatch(value)
    if match is None:
        return None
    sign, days = match.groups()
    offset = int(days or 0) * (-1 if sign == "-" else 1)
    try:
        return (today + timedelta(days=offset)).isoformat()
    except OverflowError:
        return None


def expand_relative_dates(document: Any, today: date) -> Any:
    """A copy of a parsed JSON ``document`` with the relative dates of its date fields
    (``DATE_FIELDS``) made ISO dates; every other value is left as it is."""
    if isinstance(document, dict):
        out = {}
        for key, value in document.items():
            resolved = None
            if key in DATE_FIELDS and isinstance(value, str):
                resolved = resolve_relative_date(value, today)
            out[key] = resolved if resolved is not None else expand_relative_dates(value, today)
        return out
    if isinstance(document, list):
        return [expand_relative_dates(value, today) for value in document]
    return document


def expand_relative_dates_json(text: str, today: date) -> str:
    """JSON ``text`` with the relative dates of its date fields made ISO dates, all else byte
    for byte.

    Working on the text (not a parsed copy) leaves numbers exactly as written and the file's
    own parser and its error messages in charge of everything else.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("key") is None:
            return match.group()
        resolved = resolve_relative_date(match.group("value"), today)
        return match.group() if resolved is None else f'{match.group("key")}"{resolved}"'

    return _TOKEN.sub(replace, text)
