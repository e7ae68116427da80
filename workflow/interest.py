"""Interest on an advance: day-count bases, accrual between two dates, and the rounding rule.

Simple interest on the outstanding principal: principal x annual rate x days / basis, where
days is the actual number of calendar days (ACT) and the basis 360 or 365 by the currency's
money-market convention (ACT/360 for USD, EUR and CNY; ACT/365 for GBP and HKD), which a bank
may override per currency. Each accrual is rounded half up to the cent, the minor unit every
amount in Xinbao carries.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from workflow.money import quantize

ACT_360, ACT_365 = "ACT/360", "ACT/365"
BASES = {ACT_360: 360, ACT_365: 365}
# The London and Hong Kong money markets count 365 days; the others, 360.
DEFAULT_BASIS = {"GBP": ACT_365, "HKD": ACT_365}

UPFRONT, AT_MATURITY = "upfront", "at_maturity"
INTEREST_MODES = (UPFRONT, AT_MATURITY)


def basis_for(currency: str, overrides: dict[str, str] | None = None) -> str:
    """The day-count basis of an advance in ``currency`` (a bank's override first)."""
    if overrides and currency in overrides:
        return overrides[currency]
    return DEFAULT_BASIS.get(currency, ACT_360)


def accrue(principal: Decimal, annual_rate: Decimal, start: date, end: date, basis: str) -> Decimal:
    """Interest on ``principal`` from ``start`` to ``end`` (end exclusive: the day money comes
    back earns nothing), rounded half up to the cent; nothing for an empty or reversed span."""
    days = (end - start).days
    if days <= 0 or principal <= 0:
        return Decimal("0.00")
    return quantize(principal * annual_rate * days / BASES[basis])


__all__ = [
    "ACT_360",
    "ACT_365",
    "AT_MATURITY",
    "BASES",
    "INTEREST_MODES",
    "UPFRONT",
    "accrue",
    "basis_for",
]
