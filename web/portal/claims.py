"""The exporter's view of the steps after an overdue: the notice, the claim, the insurer's
decision and recoveries, with only what the exporter may read (no officers, no references)."""

from __future__ import annotations

from datetime import date
from typing import Any

from web.loan import today
from web.words import reason_words
from workflow.business_days import days_past_due
from workflow.states import State

# While the buyer's arrears are still open: afterwards days past due stop meaning anything.
OPEN = frozenset({State.OVERDUE, State.CLAIM_FILED})


def after_due(state: State, view: dict[str, Any]) -> dict[str, Any] | None:
    """What happened since the due date, from the exporter's API view (which already leaves
    out the bank's officers and references); every field is picked by name, so a field the
    workflow adds later is not shown by accident."""
    late = view.get("arrears")
    loan = view.get("loan") or {}
    if not late or not loan.get("due_date"):
        return None
    claim = view.get("claim") or {}
    decided = view.get("claim_decision") or {}
    return {
        "open": state in OPEN,
        "due_date": loan["due_date"],
        "overdue_since": late.get("overdue_since"),
        "days": days_past_due(date.fromisoformat(loan["due_date"]), today()),
        "notice_on": late.get("notice_filed_at"),
        "claim": (
            {"filed_on": claim.get("filed_on"), "loss_amount": claim.get("loss_amount")}
            if claim
            else None
        ),
        "decision": (
            {
                "paid": bool(decided.get("paid")),
                "indemnity": decided.get("indemnity"),
                "decided_on": decided.get("decided_on"),
                "reasons": [(code, reason_words(code)) for code in decided.get("reasons", [])],
            }
            if decided
            else None
        ),
        "recoveries": [
            {"on": r.get("on"), "amount": r.get("amount")} for r in view.get("recoveries") or []
        ],
    }


__all__ = ["after_due"]
