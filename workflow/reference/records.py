"""The reference records: insurer policies and buyer limits, declarations, whitelists, banks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

ACTIVE = "active"
STATUSES = ("active", "suspended", "cancelled", "expired")


@dataclass(frozen=True)
class Policy:
    policy_no: str
    exporter_uscc: str
    status: str
    start: date
    end: date
    coverage_ratio: Decimal
    premium_paid: bool
    declaration_window_days: int
    max_credit_days: int
    covered_countries: tuple[str, ...] = ()
    excluded_countries: tuple[str, ...] = ()
    insurer: str = "Sinosure"
    # After the due date: days of grace before an unpaid advance is overdue, and the days
    # (from the original due date) by which the notice of possible loss and the claim must
    # reach the insurer. Defaults: docs/lifecycle.md.
    grace_days: int = 0
    notice_days: int = 60
    claim_days: int = 120
    # How many days past an advance's first due date the insurer lets cover follow a
    # deferral (延期还本付息). Default: docs/lifecycle.md.
    max_deferral_days: int = 180

    def in_force_on(self, day: date) -> bool:
        return self.status == ACTIVE and self.start <= day <= self.end

    def covers_country(self, country: str) -> bool:
        if country in self.excluded_countries:
            return False
        return not self.covered_countries or country in self.covered_countries


@dataclass(frozen=True)
class BuyerLimit:
    limit_id: str
    policy_no: str
    buyer_code: str
    buyer_name: str
    country: str
    currency: str
    amount: Decimal
    max_credit_days: int
    effective: date
    expiry: date
    status: str

    def in_force_on(self, day: date) -> bool:
        return self.status == ACTIVE and self.effective <= day <= self.expiry

    @property
    def exposure(self) -> str:
        """What reservations count against: the buyer under the policy in the limit's
        currency, not the limit record, so a limit the insurer re-issues under a new id still
        sees what the deals on the old one hold."""
        return exposure_of(self.policy_no, self.buyer_code, self.currency)


def exposure_of(policy_no: str, buyer_code: str, currency: str) -> str:
    """The id of a buyer exposure; the policy number's length keeps it unambiguous."""
    return f"{len(policy_no)}:{policy_no}|{buyer_code}|{currency}"


@dataclass(frozen=True)
class Declaration:
    policy_no: str
    buyer_code: str
    invoice_number: str
    shipment_date: date
    declared_on: date


@dataclass(frozen=True)
class Overdue:
    policy_no: str
    buyer_code: str
    reported_on: date


@dataclass(frozen=True)
class Whitelist:
    programme: str
    region: str
    valid_from: date
    valid_to: date
    members: tuple[str, ...] = field(default=())

    def active_on(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True)
class Bank:
    bank_id: str
    name: str
    currencies: tuple[str, ...]
    min_amount: Decimal
    max_amount: Decimal
    max_tenor_days: int
    advance_rate: Decimal
    annual_rate: Decimal
    requires_whitelist: bool
    decision_hours: Decimal
    # Maker-checker: an approval of this amount or more (in the deal's currency) needs a
    # second officer with the checker role; None = one officer always suffices.
    second_approval_above: Decimal | None = None
    # The bank's advance product: interest deducted when the advance is paid out ("upfront",
    # a discounted advance) or paid with the principal ("at_maturity").
    interest_mode: str = "at_maturity"
    # Day-count basis by currency where the bank departs from the market default.
    day_count: dict[str, str] = field(default_factory=dict)
    # Days after which an approval never disbursed lapses; None = the system's setting.
    approval_lapse_days: int | None = None
    # Only deals whose every invoice names its bill of lading and customs declaration.
    requires_trade_documents: bool = False

    def needs_second_approval(self, amount: Decimal) -> bool:
        return self.second_approval_above is not None and amount >= self.second_approval_above


@dataclass(frozen=True)
class CustomsRecord:
    """One customs export declaration (报关单) from the customs feed."""

    declaration_number: str
    exporter_uscc: str
    destination_country: str
    currency: str
    amount: Decimal
    export_date: date


@dataclass(frozen=True)
class Exporter:
    uscc: str
    name: str
    region: str


def as_text(value: bytes | str) -> str:
    """A Redis reply as text, whichever way the client decodes."""
    return value.decode() if isinstance(value, bytes) else value
