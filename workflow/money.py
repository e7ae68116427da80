"""Money as Decimal: parsing wire strings, rounding, and the integer minor units Lua adds up."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
_AMOUNT = re.compile(r"^\d{1,15}(\.\d{1,2})?$")


class MoneyFormatError(ValueError):
    """A money value is not a plain non-negative decimal string with at most two decimals."""


def parse_amount(raw: object) -> Decimal:
    """Parse a wire amount: a string like "125000.00"; numbers are refused (floats lose cents)."""
    if not isinstance(raw, str):
        raise MoneyFormatError("must be a decimal string such as \"125000.00\", not a number")
    if not _AMOUNT.match(raw):
        raise MoneyFormatError("must be a non-negative decimal string with at most 2 decimals")
    return Decimal(raw)


def quantize(amount: Decimal) -> Decimal:
    """Round to cents, half up: the rounding used for display and stored amounts."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def floor_cents(amount: Decimal) -> Decimal:
    """Round down to cents: a financeable amount is never rounded up past its cap."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def to_cents(amount: Decimal) -> int:
    """Integer minor units, exact for amounts below 2**53 cents (Lua numbers are doubles)."""
    return int(quantize(amount) * 100)


def from_cents(cents: int | str) -> Decimal:
    return quantize(Decimal(int(cents)) / 100)


def fmt(amount: Decimal | None) -> str | None:
    """The wire form of an amount: always two decimals."""
    return None if amount is None else str(quantize(amount))
