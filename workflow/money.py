"""Money as Decimal: parsing wire strings, rounding, and the integer minor units Lua adds up."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
# Twelve integer digits: far above any trade receivable, and every sum of such amounts in
# cents stays exact in the doubles Lua uses to add reservations (2**53 is about 9e15 cents).
MAX_AMOUNT = Decimal("999999999999.99")
MAX_CENTS = 2**53 - 1
AMOUNT_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")


class MoneyFormatError(ValueError):
    """A money value is not a plain non-negative decimal string with at most two decimals."""


def parse_amount(raw: object) -> Decimal:
    """Parse a wire amount: a string like "125000.00"; numbers are refused (floats lose cents)."""
    if not isinstance(raw, str):
        raise MoneyFormatError('must be a decimal string such as "125000.00", not a number')
    if not AMOUNT_RE.fullmatch(raw):
        raise MoneyFormatError(
            "must be a non-negative decimal string with at most 12 digits and 2 decimals"
        )
    return Decimal(raw)


def quantize(amount: Decimal) -> Decimal:
    """Round to cents, half up: the rounding used for display and stored amounts."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def floor_cents(amount: Decimal) -> Decimal:
    """Round down to cents: a financeable amount is never rounded up past its cap."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def to_cents(amount: Decimal) -> int:
    """Integer minor units; refuses what Lua's doubles could not add exactly."""
    cents = int(quantize(amount) * 100)
    if abs(cents) > MAX_CENTS:
        raise MoneyFormatError(f"{amount} is beyond the largest amount Xinbao handles")
    return cents


def from_cents(cents: int | str) -> Decimal:
    return quantize(Decimal(int(cents)) / 100)


def fmt(amount: Decimal | None) -> str | None:
    """The wire form of an amount: always two decimals."""
    return None if amount is None else str(quantize(amount))
