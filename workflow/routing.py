"""Which banks may finance a deal, in which order they are offered it, and at what price.

Order (documented in the README): the lowest annual rate first (cheapest money for the
exporter), then the highest advance rate (most money), then bank id, so routing is
deterministic. A bank that has already been offered the deal is never offered it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from workflow.money import floor_cents, quantize
from workflow.reasons import Reason
from workflow.reference import Bank

# Tenor above this needs a policy that allows long credit (up to 360 days).
STANDARD_MAX_TENOR_DAYS = 180
DAY_COUNT = Decimal(360)  # ACT/360, the CNY and USD money-market convention


@dataclass(frozen=True)
class Offer:
    """What one bank is asked to finance: the amount, its rate and the tenor."""

    bank_id: str
    amount: Decimal
    advance_rate: Decimal
    annual_rate: Decimal
    tenor_days: int
    interest: Decimal
    decision_hours: Decimal

    def to_wire(self) -> dict[str, str | int]:
        return {
            "bank_id": self.bank_id,
            "amount": str(self.amount),
            "advance_rate": str(self.advance_rate),
            "annual_rate": str(self.annual_rate),
            "tenor_days": self.tenor_days,
            "interest": str(self.interest),
        }


@dataclass(frozen=True)
class RoutingInput:
    """What routing needs to know about a verified deal."""

    currency: str
    requested_amount: Decimal
    insured_amount: Decimal
    latest_due: date
    today: date
    whitelisted: bool
    max_credit_days: int
    # Every invoice names its bill of lading and its customs declaration.
    trade_documents: bool = False

    @property
    def tenor_days(self) -> int:
        return max((self.latest_due - self.today).days, 0)


def financeable_amount(bank: Bank, deal: RoutingInput) -> Decimal:
    """Insured amount x the bank's advance rate, never more than the exporter asked for."""
    return min(deal.requested_amount, floor_cents(deal.insured_amount * bank.advance_rate))


BankCheck = Callable[[Bank, RoutingInput], Reason | None]


def bank_takes_currency(bank: Bank, deal: RoutingInput) -> Reason | None:
    return None if deal.currency in bank.currencies else Reason.BANK_CURRENCY_UNSUPPORTED


def bank_amount_in_range(bank: Bank, deal: RoutingInput) -> Reason | None:
    amount = financeable_amount(bank, deal)
    if amount <= 0 or not bank.min_amount <= amount <= bank.max_amount:
        return Reason.BANK_AMOUNT_OUT_OF_RANGE
    return None


def bank_tenor_allowed(bank: Bank, deal: RoutingInput) -> Reason | None:
    ceiling = min(bank.max_tenor_days, max(STANDARD_MAX_TENOR_DAYS, deal.max_credit_days))
    return Reason.BANK_TENOR_EXCEEDED if deal.tenor_days > ceiling else None


def bank_whitelist_satisfied(bank: Bank, deal: RoutingInput) -> Reason | None:
    if bank.requires_whitelist and not deal.whitelisted:
        return Reason.EXPORTER_NOT_WHITELISTED
    return None


def bank_trade_documents_satisfied(bank: Bank, deal: RoutingInput) -> Reason | None:
    if bank.requires_trade_documents and not deal.trade_documents:
        return Reason.BANK_TRADE_DOCUMENTS_REQUIRED
    return None


BANK_CHECKS: tuple[BankCheck, ...] = (
    bank_takes_currency,
    bank_amount_in_range,
    bank_tenor_allowed,
    bank_whitelist_satisfied,
    bank_trade_documents_satisfied,
)


def route_order(banks: list[Bank]) -> list[Bank]:
    return sorted(banks, key=lambda b: (b.annual_rate, -b.advance_rate, b.bank_id))


def price(bank: Bank, deal: RoutingInput) -> Offer:
    amount = financeable_amount(bank, deal)
    interest = quantize(amount * bank.annual_rate * deal.tenor_days / DAY_COUNT)
    return Offer(
        bank_id=bank.bank_id,
        amount=amount,
        advance_rate=bank.advance_rate,
        annual_rate=bank.annual_rate,
        tenor_days=deal.tenor_days,
        interest=interest,
        decision_hours=bank.decision_hours,
    )


def next_offer(
    banks: list[Bank], deal: RoutingInput, already_offered: list[str]
) -> tuple[Offer | None, dict[str, str]]:
    """The next bank to offer the deal to, and why each bank passed over was ineligible."""
    passed_over: dict[str, str] = {}
    for bank in route_order(banks):
        if bank.bank_id in already_offered:
            continue
        reason = next((r for check in BANK_CHECKS if (r := check(bank, deal))), None)
        if reason is None:
            return price(bank, deal), passed_over
        passed_over[bank.bank_id] = str(reason)
    return None, passed_over
