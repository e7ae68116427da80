"""The deal page's "Arrears and the insurer": the deadlines, the filings, the insurer's decision,
recoveries, and which of the notice, claim and recovery forms the deal takes now."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from web.api import flow
from web.desk.claim_forms import ClaimForm, NoticeForm, RecoveryForm, document_words
from web.loan import schedule
from web.words import reason_words
from workflow.business_days import arrears_bucket, business_date, days_past_due
from workflow.claim_rules import LATE_NOTICE_CUT, LATE_NOTICE_GRACE_DAYS
from workflow.deal import Deal
from workflow.states import State


def form_fits(deal: Deal, action: str) -> bool:
    """Whether the deal (held by the officer's bank) takes the ``action`` form now."""
    if action == "notice":
        return deal.state == State.OVERDUE and not deal.fields.get("notice_filed_at")
    if action == "claim":
        return (
            deal.state == State.OVERDUE
            and bool(deal.fields.get("notice_filed_at"))
            and not deal.get("claim")
        )
    return action == "recover" and deal.state == State.INDEMNIFIED


def add_forms(deal: Deal, forms: dict[str, Any]) -> None:
    """The blank notice, claim or recovery form the deal takes now (a refused one is kept)."""
    if form_fits(deal, "notice"):
        forms.setdefault("notice", NoticeForm(formdata=None))
    if form_fits(deal, "claim"):
        loan = schedule(deal)
        forms.setdefault(
            "claim", ClaimForm(formdata=None, loss_amount=loan["outstanding"] if loan else "")
        )
    if form_fits(deal, "recover"):
        forms.setdefault("recover", RecoveryForm(formdata=None))


def _late(deadline: str | None, on: date) -> int:
    """Days ``on`` is past ``deadline`` (0 when not past)."""
    return max((on - date.fromisoformat(deadline)).days, 0) if deadline else 0


def arrears(deal: Deal, view: dict[str, Any]) -> dict[str, Any] | None:
    """An advance past due and what the insurer needs by when; the claim and its outcome."""
    late = view.get("arrears")
    if not late:
        return None
    loan = deal.get("loan") or {}
    today = business_date(flow().clock())
    days = days_past_due(date.fromisoformat(loan["due_date"]), today)
    decided = view.get("claim_decision")
    claim = view.get("claim")
    notice_deadline, claim_deadline = late.get("notice_deadline"), late.get("claim_deadline")
    recoveries = view.get("recoveries") or []
    total = sum((Decimal(r["amount"]) for r in recoveries), Decimal(0))
    to_insurer = sum((Decimal(r["to_insurer"]) for r in recoveries), Decimal(0))
    notice_late = deal.fields.get("notice_late_days")
    return {
        **late,
        # Days past due mean something while the arrears are open, not once the claim ended it.
        "open": deal.state in (State.OVERDUE, State.CLAIM_FILED),
        "days": days,
        "bucket": arrears_bucket(days),
        "today": today.isoformat(),
        # Before the notice: how late it would be if sent today, and what that costs.
        "notice_late_today": _late(notice_deadline, today),
        "notice_days_left": (
            (date.fromisoformat(notice_deadline) - today).days if notice_deadline else None
        ),
        "notice_late_days": int(notice_late) if notice_late not in (None, "") else None,
        "claim_late_today": _late(claim_deadline, today),
        "claim_days_left": (
            (date.fromisoformat(claim_deadline) - today).days if claim_deadline else None
        ),
        "grace_days": LATE_NOTICE_GRACE_DAYS,
        "late_cut": LATE_NOTICE_CUT,
        "loss_cap": deal.fields.get("invoice_total"),
        "claim": claim,
        "documents": [document_words(d) for d in (claim or {}).get("documents", [])],
        "decision": decided,
        "decision_words": [reason_words(code) for code in (decided or {}).get("reasons", [])],
        "recoveries": recoveries,
        "recovered": total,
        "recovered_to_insurer": to_insurer,
        "recovered_to_bank": total - to_insurer,
        # The loss each side bore, which recoveries are shared by (the workflow's rule).
        "bank_bore": (
            Decimal(decided["covered_loss"]) - Decimal(decided["indemnity"]) if decided else None
        ),
        "recoverable": (
            Decimal(decided["covered_loss"]) - total if decided and decided.get("paid") else None
        ),
    }
