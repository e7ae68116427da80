"""A disbursed deal's loan as the desk and the portal show it (interest to date: display only)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l

from web.api import flow
from workflow.business_days import business_date
from workflow.deal import Deal
from workflow.interest import ACT_360, ACT_365, AT_MATURITY, UPFRONT, accrue
from workflow.states import State

MODE_WORDS = {
    UPFRONT: _l("Deducted up front, to the due date (discounted advance)"),
    AT_MATURITY: _l("Paid at maturity, with the principal"),
}
BASIS_WORDS = {
    ACT_360: _l("ACT/360: actual days over a 360-day year"),
    ACT_365: _l("ACT/365: actual days over a 365-day year"),
}


def today() -> date:
    """Today's business date as the officer writes it and the workflow counts it
    (Asia/Shanghai)."""
    return business_date(flow().clock())


def _d(loan: dict[str, Any], name: str) -> Decimal:
    return Decimal(str(loan.get(name) or "0"))


def owed_on(loan: dict[str, Any], on: date) -> tuple[Decimal, Decimal]:
    """Principal outstanding and interest owed on ``on``: the interest accrued and stored,
    plus what accrues on the outstanding principal from ``accrued_to`` to ``on`` (the same
    rule the workflow applies when a repayment comes in)."""
    outstanding = _d(loan, "outstanding")
    interest = _d(loan, "accrued_interest")
    accrued_to = date.fromisoformat(loan["accrued_to"])
    if on > accrued_to:
        interest += accrue(outstanding, _d(loan, "annual_rate"), accrued_to, on, loan["basis"])
    return outstanding, interest


def schedule(deal: Deal, on: date | None = None) -> dict[str, Any] | None:
    """The loan's terms and standing on ``on`` (today by default), or None before disbursement."""
    loan = deal.get("loan")
    if not loan:
        return None
    on = on or today()
    settled = deal.state == State.REPAID
    outstanding, interest = (Decimal(0), Decimal(0)) if settled else owed_on(loan, on)
    due = date.fromisoformat(loan["due_date"])
    mode = loan.get("interest_mode", AT_MATURITY)
    return {
        "principal": loan["principal"],
        "value_date": loan["value_date"],
        "due_date": loan["due_date"],
        "days_to_due": (due - on).days,
        "interest_mode": mode,
        "upfront": mode == UPFRONT,
        "mode_words": str(MODE_WORDS.get(mode, mode)),
        "basis": loan["basis"],
        "basis_words": str(BASIS_WORDS.get(loan["basis"], loan["basis"])),
        "annual_rate": loan["annual_rate"],
        "upfront_interest": loan["upfront_interest"],
        "net_paid_out": loan["net_paid_out"],
        "outstanding": outstanding,
        "interest_to_date": interest,
        "owed_today": outstanding + interest,
        "today": on.isoformat(),
        "principal_paid": loan["principal_paid"],
        "interest_paid": loan["interest_paid"],
        "last_value_date": loan["last_value_date"],
        "reference": loan.get("reference", ""),
        "officer": loan.get("officer", ""),
        "settled": settled,
    }


def repayments(deal: Deal) -> list[dict[str, Any]]:
    """The repayments recorded on the deal, in the order they were recorded."""
    return list(deal.get("repayments") or [])


def approved_on(deal: Deal) -> date:
    """The day the deal was approved: the earliest value date of its disbursement."""
    moment = deal.fields.get("approved_at") or deal.fields["updated_at"]
    return business_date(datetime.fromisoformat(moment))


__all__ = ["approved_on", "owed_on", "repayments", "schedule", "today"]
