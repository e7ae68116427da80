"""A deal as the API shows it to an exporter or a bank: what each may see of it."""

from __future__ import annotations

from typing import Any

from workflow.checks import check_results
from workflow.deal import Deal
from workflow.reasons import describe
from workflow.states import State
from workflow.visibility import BANK_RECORD_FIELDS


def explained(failure: dict[str, str]) -> dict[str, str]:
    """A failed check with its reason in words beside the code."""
    return {**failure, "message": describe(failure.get("reason", ""))}


# The same fields the exporter's event log leaves out of these records.
BANK_INTERNALS = BANK_RECORD_FIELDS


def _without_bank_internals(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in BANK_INTERNALS}


def deal_view(deal: Deal, viewer_role: str, viewer_id: str) -> dict[str, Any]:
    """The API's representation of a deal for an exporter or a bank.

    A bank that no longer holds a deal (it declined or let the deadline pass) still sees the
    application it was shown, but nothing of what other banks offered or decided.
    """
    f = deal.fields
    bank_id = deal.bank_id
    view: dict[str, Any] = {
        "id": deal.id,
        "state": str(deal.state),
        "version": deal.version,
        "exporter_uscc": f["exporter_uscc"],
        "policy_no": f["policy_no"],
        "buyer": deal.get("buyer"),
        "invoices": deal.get("invoices"),
        "currency": f["currency"],
        "amounts": {
            "requested": f.get("requested_amount"),
            "invoice_total": f.get("invoice_total"),
            "insured": f.get("insured_amount") or None,
            "eligible": f.get("eligible_amount") or None,
            "approved": f.get("approved_amount") or None,
            "reserved_on_limit": f.get("reserved_amount") or None,
        },
        "checks": check_results(deal),
        "failures": [explained(f) for f in deal.get("failures", [])],
        "reasons": deal.get("reasons", []),
        "whitelist": deal.get("whitelist"),
        "warnings": [
            {**w, "message": describe(w.get("code", ""), default="")}
            for w in deal.get("warnings", [])
        ],
        "bank": (
            {
                "bank_id": bank_id,
                "deadline": f.get("deadline") or None,
                "pricing": deal.get("pricing"),
            }
            if bank_id
            else None
        ),
        "decision": deal.get("decision"),
        "first_approval": deal.get("first_approval"),
        "pending_disbursement": deal.get("pending_disbursement"),
        "loan": deal.get("loan"),
        "repayments": deal.get("repayments"),
        "arrears": {
            "overdue_since": f.get("overdue_since") or None,
            "notice_deadline": f.get("notice_deadline") or None,
            "claim_deadline": f.get("claim_deadline") or None,
            "notice_filed_at": f.get("notice_filed_at") or None,
            "missed_deadlines": deal.get("missed_deadlines", []),
        }
        if f.get("overdue_since")
        else None,
        "claim": deal.get("claim"),
        "claim_decision": deal.get("claim_decision"),
        "recoveries": deal.get("recoveries"),
        "deferrals": deal.get("deferrals"),
        # Why the deal waits and until when it is tried again (the insurer unreachable).
        "hold": {"reason": f.get("hold_reason"), "until": f.get("hold_until")}
        if deal.state == State.ON_HOLD and f.get("hold_reason")
        else None,
        "created_at": f.get("created_at"),
        "updated_at": f.get("updated_at"),
    }
    if viewer_role == "exporter":
        view["offered_banks"] = deal.offered_banks
        view["first_approval"] = None  # the bank's internal maker-checker steps
        view["pending_disbursement"] = None
        # The bank's own payment references and officers stay with the bank.
        for name in ("loan", "claim", "decision"):
            if view[name]:
                view[name] = _without_bank_internals(view[name])
        for name in ("repayments", "recoveries", "deferrals"):
            if view[name]:
                view[name] = [_without_bank_internals(item) for item in view[name]]
    elif bank_id != viewer_id:
        view["first_approval"] = None
        view["pending_disbursement"] = None
        view["bank"] = None
        view["amounts"]["eligible"] = view["amounts"]["approved"] = None
    if viewer_role == "bank" and (view["decision"] or {}).get("bank_id") != viewer_id:
        view["decision"] = None  # another bank's decision is none of this bank's business
    return view
