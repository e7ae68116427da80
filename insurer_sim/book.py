"""The simulated insurer's book: policies, buyer covers, declarations and overdues, as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from workflow.demo import expand_relative_dates_json
from workflow.reference import ReferenceData, decode_reference_text, parse_reference_json
from workflow.reference.records import BuyerLimit, Declaration, Overdue, Policy

NOTHING_USED = Decimal(0)

@dataclass
class Book:
    """What the insurer knows, indexed as the API reads it. Later records of the same key
    replace earlier ones, as ``xinbao load`` does."""

    policies: dict[str, Policy] = field(default_factory=dict)
    limits: dict[tuple[str, str], dict[str, BuyerLimit]] = field(default_factory=dict)
    declarations: dict[tuple[str, str, str], Declaration] = field(default_factory=dict)
    overdues: dict[tuple[str, str], dict[date, Overdue]] = field(default_factory=dict)

    @classmethod
    def of(cls, data: ReferenceData) -> Book:
        book = cls()
        for policy in data.policies:
            book.policies[policy.policy_no] = policy
        for lim in data.limits:
            book.limits.setdefault((lim.policy_no, lim.buyer_code), {})[lim.limit_id] = lim
        for dec in data.declarations:
            book.declarations[(dec.policy_no, dec.buyer_code, dec.invoice_number)] = dec
        for o in data.overdues:
            book.overdues.setdefault((o.policy_no, o.buyer_code), {})[o.reported_on] = o
        return book

    def covers(self, policy_no: str, buyer_code: str) -> list[BuyerLimit]:
        found = self.limits.get((policy_no, buyer_code), {})
        return [found[i] for i in sorted(found)]

    def overdues_of(self, policy_no: str, buyer_code: str) -> list[Overdue]:
        found = self.overdues.get((policy_no, buyer_code), {})
        return [found[d] for d in sorted(found)]


def load_book(path: Path, today: date) -> Book:
    """Parse a reference-data file (relative dates counted from ``today``) into a Book;
    ReferenceFileError lists its problems."""
    text = decode_reference_text(path.read_bytes())
    return Book.of(parse_reference_json(expand_relative_dates_json(text, today)))


def policy_wire(p: Policy) -> dict:
    return {
        "policyNo": p.policy_no,
        "insuredId": p.exporter_uscc,
        "insurer": p.insurer,
        "status": p.status,
        "period": {"start": p.start.isoformat(), "end": p.end.isoformat()},
        "coverageRatio": str(p.coverage_ratio),
        "premiumPaid": p.premium_paid,
        "declarationWindowDays": p.declaration_window_days,
        "maxCreditDays": p.max_credit_days,
        "countries": {"covered": list(p.covered_countries), "excluded": list(p.excluded_countries)},
        "terms": {
            "graceDays": p.grace_days,
            "noticeDays": p.notice_days,
            "claimDays": p.claim_days,
            "maxDeferralDays": p.max_deferral_days,
        },
    }


def cover_wire(lim: BuyerLimit, used: Decimal = NOTHING_USED) -> dict:
    return {
        "coverId": lim.limit_id,
        "buyerName": lim.buyer_name,
        "country": lim.country,
        "currency": lim.currency,
        "amount": str(lim.amount),
        # What Xinbao reported as used of the limit (its paid-out advances) is not room.
        "room": str(max(lim.amount - used, Decimal(0))),
        "maxCreditDays": lim.max_credit_days,
        "effective": lim.effective.isoformat(),
        "expiry": lim.expiry.isoformat(),
        "status": lim.status,
    }


def declaration_wire(invoice: str, dec: Declaration | None) -> dict:
    if dec is None:
        return {"invoiceNumber": invoice, "declared": False}
    return {
        "invoiceNumber": invoice,
        "declared": True,
        "shipmentDate": dec.shipment_date.isoformat(),
        "declaredOn": dec.declared_on.isoformat(),
    }
