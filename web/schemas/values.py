"""The JSON API's own field types: money and rates as decimal strings, trimmed strings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

from workflow.money import MoneyFormatError, parse_amount

RATE_RE = re.compile(r"0(?:\.[0-9]{1,6})?|1(?:\.0{1,6})?")


class Money(fields.Field):
    """A positive amount as a decimal string ("125000.00"); JSON numbers are refused."""

    default_error_messages = {"positive": "must be greater than 0"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        try:
            amount = parse_amount(value)
        except MoneyFormatError as exc:
            raise ValidationError(str(exc)) from exc
        if amount <= 0:
            raise self.make_error("positive")
        return amount

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Rate(fields.Field):
    """An annual rate as a decimal fraction string ("0.0450"), between 0 and 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not RATE_RE.fullmatch(value):
            raise ValidationError('must be a decimal string from "0" to "1", e.g. "0.0450"')
        return Decimal(value)


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before it is validated; ``upper`` also
    upper-cases it (a bill of lading number is the same document in any case)."""

    def __init__(self, *args: Any, upper: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.upper = upper

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return text.upper() if self.upper else text
