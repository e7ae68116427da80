"""The deal page's parts around the advance: a disbursement awaiting a checker, the deferral
form and the deferrals asked, and which of those forms the deal takes now."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from web.desk.forms import ConfirmPayoutForm, DeferForm, ReturnPayoutForm
from web.loan import today
from web.words import reason_words
from workflow.deal import Deal
from workflow.deferral import DEFERRABLE
from workflow.officers import officer_id
from workflow.states import State

# A deferral's new due date as the form first offers it: this many days past the later of the
# due date in force and today (the officer changes it to what was agreed with the exporter).
DEFAULT_DEFERRAL_DAYS = 30


def pending_payout(deal: Deal) -> dict[str, Any] | None:
    """The disbursement the maker entered, awaiting a checker (None when there is none)."""
    return deal.get("pending_disbursement") if deal.state == State.APPROVED else None


def awaits(deal: Deal) -> dict[str, Any] | None:
    """What a queue row says awaits a checker: a first approval or an entered disbursement,
    who made it and for how much."""
    first = deal.get("first_approval") if deal.state == State.PENDING_BANK else None
    if first:
        return {"kind": "approval", "officer": first["officer"], "amount": first.get("amount")}
    pending = pending_payout(deal)
    if pending:
        return {"kind": "disbursement", "officer": pending["officer"], "amount": pending["amount"]}
    return None


def is_maker(pending: dict[str, Any], user: Any) -> bool:
    return officer_id(user.username) == pending.get("officer")


def form_fits(deal: Deal, user: Any, action: str, ref: str | None = None) -> bool:
    """Whether the deal (held by the officer's bank) takes the ``action`` form now, from this
    officer; ``ref`` is the entry a posted check form named (it must still be the one)."""
    if action == "defer":
        return deal.state in DEFERRABLE
    pending = pending_payout(deal)
    if pending is None or (ref is not None and pending.get("ref") != ref):
        return False
    if action == "confirm_payout":
        return bool(user.checker) and not is_maker(pending, user)
    return action == "send_back_payout" and (bool(user.checker) or is_maker(pending, user))


def add_forms(deal: Deal, user: Any, forms: dict[str, Any]) -> None:
    """The blank check or deferral forms the deal takes now (a refused one is kept)."""
    pending = pending_payout(deal)
    if pending is not None:
        if form_fits(deal, user, "confirm_payout"):
            forms.setdefault(
                "confirm_payout", ConfirmPayoutForm(formdata=None, payout_ref=pending["ref"])
            )
        if form_fits(deal, user, "send_back_payout"):
            forms.setdefault(
                "send_back_payout", ReturnPayoutForm(formdata=None, payout_ref=pending["ref"])
            )
    if form_fits(deal, user, "defer"):
        due = date.fromisoformat(deal.get("loan")["due_date"])
        proposed = max(due, today()) + timedelta(days=DEFAULT_DEFERRAL_DAYS)
        forms.setdefault("defer", DeferForm(formdata=None, new_due_date=proposed.isoformat()))


def deferral_rows(deal: Deal) -> list[dict[str, Any]]:
    """Every deferral asked on the deal, in the order asked, the insurer's reasons in words."""
    return [
        {
            **record,
            "reason_words": [(code, reason_words(code)) for code in record.get("reasons") or []],
        }
        for record in deal.get("deferrals") or []
    ]


def loan_parts(deal: Deal, user: Any) -> dict[str, Any]:
    """What the page shows around the advance, for an officer of the bank holding the deal."""
    pending = pending_payout(deal)
    loan = deal.get("loan") or {}
    returned = deal.get("returned_disbursement")
    return {
        "pending": pending,
        "pending_mine": bool(pending and is_maker(pending, user)),
        # Why the last entry went back, while the deal waits for a new one.
        "returned": returned if deal.state == State.APPROVED and pending is None else None,
        "checker": loan.get("checker") or None,
        "due_date": loan.get("due_date"),
        "first_due_date": loan.get("first_due_date") or loan.get("due_date"),
        "deferral_count": int(deal.fields.get("deferral_count") or 0),
        "deferrals": deferral_rows(deal),
    }


__all__ = ["add_forms", "awaits", "deferral_rows", "form_fits", "loan_parts", "pending_payout"]
