"""Dates written relative to the load day ("today-14"): the demo data stays valid on any day."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

# "today", "today+60", "today-14": N whole days after or before the day the file is loaded.
RELATIVE_DATE = re.compile(r"today(?:([+-])(\d{1,6}))?")
# One JSON string token, escapes included. Scanning left to right, every match starts at an
# opening quote, because outside strings JSON has no quote characters.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def resolve_relative_date(value: str, today: date) -> str | None:
    """The ISO date ``value`` ("today", "today+N", "today-N") names, or None if it is no such."""
    match = RELATIVE_DATE.fullmatch(value)
    if match is None:
        return None
    sign, days = match.groups()
    offset = int(days or 0) * (-1 if sign == "-" else 1)
    return (today + timedelta(days=offset)).isoformat()


def expand_relative_dates(document: Any, today: date) -> Any:
    """A copy of a parsed JSON ``document`` with every relative date string made an ISO date."""
    if isinstance(document, dict):
        return {key: expand_relative_dates(value, today) for key, value in document.items()}
    if isinstance(document, list):
        return [expand_relative_dates(value, today) for value in document]
    if isinstance(document, str):
        resolved = resolve_relative_date(document, today)
        return document if resolved is None else resolved
    return document


def expand_relative_dates_json(text: str, today: date) -> str:
    """JSON ``text`` with every relative date string made an ISO date, all else byte for byte.

    Working on the text (not a parsed copy) leaves numbers exactly as written and the file's
    own parser and its error messages in charge of everything else.
    """

    def replace(match: re.Match[str]) -> str:
        resolved = resolve_relative_date(match.group()[1:-1], today)
        return match.group() if resolved is None else f'"{resolved}"'

    return _JSON_STRING.sub(replace, text)
