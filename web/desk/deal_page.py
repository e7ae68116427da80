"""The officer desk's deal page: a deal as the bank may see it, with the forms it takes now."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import abort, render_template
from flask_babel import gettext as _
from flask_login import current_user

from web.api import bank_deal, flow
from web.auth.session import role_required
from web.desk import desk
from web.desk.arrears import add_forms, arrears
from web.desk.forms import (
    ApproveForm,
    ConfirmForm,
    DeclineForm,
    DisburseForm,
    RepayForm,
    SendBackForm,
)
from web.desk.loan_page import add_forms as add_loan_forms
from web.desk.loan_page import loan_parts, pending_payout
from web.formatting import time_left, to_datetime
from web.loan import MODE_WORDS, repayments, schedule
from web.loan import today as loan_today
from web.schemas import deal_view
from web.words import bank_state_words, bank_timeline, check_rows, reason_words
from workflow.deal import Deal
from workflow.interest import AT_MATURITY
from workflow.money import floor_cents, from_cents
from workflow.pipeline import DealNotFound
from workflow.servicing import SERVICED
from workflow.states import State
from workflow.users import OFFICER
from workflow.visibility import holds


def officer_bank() -> str:
    return current_user.user.bank_id


def status_words(deal: Deal, bank_id: str) -> str:
    """What became of a deal for this bank: its state while the bank holds it, else how its
    offer ended (the bank sees nothing later)."""
    if holds(deal, bank_id) and deal.state == State.PENDING_BANK:
        first = deal.get("first_approval")
        if first:
            return _(
                "Awaiting a second approval (approved first by %(officer)s)",
                officer=first["officer"],
            )
        return _("Pending your decision")
    if holds(deal, bank_id) and pending_payout(deal):
        return _("Approved; a disbursement awaits a checker")
    if holds(deal, bank_id) or deal.state != State.ROUTING:
        return bank_state_words(deal.state)
    decision = deal.get("decision") or {}
    if decision.get("bank_id") == bank_id and decision.get("decision") == "decline":
        return _("Declined by your bank")
    return _("Passed on: deadline missed")


def eligible_breakdown(deal: Deal, view: dict[str, Any]) -> dict[str, Any] | None:
    """How the financeable amount was computed, from the deal's own stored figures (routing's
    rule: insured amount x advance rate, floored to the cent, at most the amount requested)."""
    pricing = (view.get("bank") or {}).get("pricing") or {}
    total = deal.decimal("invoice_total")
    insured = deal.decimal("insured_amount")
    coverage = deal.fields.get("coverage_ratio")
    advance = pricing.get("advance_rate")
    eligible = view["amounts"].get("eligible")
    if insured is None or not advance or eligible is None:
        return None
    advanced = floor_cents(insured * Decimal(advance))
    requested = deal.decimal("requested_amount")
    return {
        "invoice_total": total,
        "coverage_ratio": coverage,
        "insured": insured,
        "advance_rate": advance,
        "advanced": advanced,
        "requested": requested,
        "capped": requested is not None and requested < advanced,
        "eligible": eligible,
    }


@desk.get("/deals/<deal_id>")
@role_required(OFFICER)
def deal_page(deal_id: str) -> Any:
    """A deal as the bank may see it: 404 for a deal never offered to it or a guessed id."""
    return render_deal(deal_id)


def _seen(deal_id: str, bank_id: str) -> tuple[Deal, list[dict[str, Any]]]:
    try:
        return bank_deal(deal_id, bank_id)
    except DealNotFound:
        abort(404)


def decidable(deal: Deal, bank_id: str) -> bool:
    """Whether the decision forms belong on the page: pending this bank, deadline not passed."""
    if not holds(deal, bank_id) or deal.state != State.PENDING_BANK:
        return False
    deadline = to_datetime(deal.fields.get("deadline"))
    return deadline is None or deadline > flow().clock()


def render_deal(
    deal_id: str,
    forms: dict[str, Any] | None = None,
    problem: str | None = None,
    entered: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> Any:
    """The deal page; ``forms`` are refused forms shown again with their input and errors."""
    bank_id = officer_bank()
    user = current_user.user
    deal, events = _seen(deal_id, bank_id)
    view = deal_view(deal, "bank", bank_id)
    reference = flow().reference
    exporter = reference.exporter(deal.fields["exporter_uscc"])
    bank = reference.bank(bank_id)
    checks, failures, warnings = check_rows(view)
    now = flow().clock()
    held = holds(deal, bank_id)
    can_decide = decidable(deal, bank_id)
    first = view.get("first_approval") if held else None
    forms = dict(forms or {})
    if can_decide:
        pricing = (view.get("bank") or {}).get("pricing") or {}
        if first is None:
            forms.setdefault(
                "approve",
                ApproveForm(
                    formdata=None,
                    amount=view["amounts"].get("eligible") or "",
                    annual_rate=pricing.get("annual_rate") or "",
                ),
            )
        else:
            if user.checker and first["officer"] != user.username:
                forms.setdefault("confirm", ConfirmForm(formdata=None, first_ref=first["ref"]))
            if user.checker or first["officer"] == user.username:
                forms.setdefault("send_back", SendBackForm(formdata=None, first_ref=first["ref"]))
        forms.setdefault("decline", DeclineForm(formdata=None))
    if held and deal.state == State.APPROVED and not pending_payout(deal):
        forms.setdefault(
            "disburse",
            DisburseForm(
                formdata=None,
                amount=view["amounts"].get("approved") or "",
                value_date=loan_today().isoformat(),
            ),
        )
    if held and deal.state in SERVICED:
        forms.setdefault("repay", RepayForm(formdata=None, value_date=loan_today().isoformat()))
    if held:
        add_forms(deal, forms)
        add_loan_forms(deal, user, forms)
    return render_template(
        "desk/deal.html",
        deal=deal,
        view=view,
        held=held,
        status=status_words(deal, bank_id),
        exporter_name=exporter.name if exporter else None,
        checks=checks,
        failures=failures,
        warnings=warnings,
        breakdown=eligible_breakdown(deal, view),
        time_left=time_left(deal.fields.get("deadline"), now) if held else "",
        timeline=bank_timeline(events, bank_id),
        whitelist_words=reason_words((view["whitelist"] or {}).get("reason") or ""),
        bank_id=bank_id,
        second_approval_above=bank.second_approval_above if bank else None,
        buyer_limit=_buyer_limit(deal) if held else None,
        first=first,
        mine=bool(first and first["officer"] == user.username),
        decidable=can_decide,
        loan=schedule(deal) if held else None,
        arrears=arrears(deal, view) if held else None,
        disbursal_terms=_disbursal_terms(deal, bank) if "disburse" in forms else None,
        repayments=repayments(deal) if held else [],
        around=loan_parts(deal, user) if held else None,
        forms=forms,
        problem=problem,
        entered=entered or [],
    ), status


def _disbursal_terms(deal: Deal, bank: Any) -> dict[str, Any]:
    """What the disbursement will fix (the workflow's rules): the due date, the latest invoice
    due date; the approved rate; interest up front or at maturity per the bank's product."""
    mode = bank.interest_mode if bank else AT_MATURITY
    return {
        "due": max(inv.due_date for inv in deal.application.invoices).isoformat(),
        "rate": deal.fields.get("annual_rate") or "",
        "mode_words": str(MODE_WORDS.get(mode, mode)),
    }


def _buyer_limit(deal: Deal) -> dict[str, Any] | None:
    """The insurer's limit on the buyer the deal was verified against: its amount, what the
    exporter's live deals reserve on the buyer (this one included) and the room left."""
    limit_id, exposure = deal.fields.get("limit_id"), deal.fields.get("exposure")
    limit = flow().reference.limit(limit_id) if limit_id else None
    if limit is None or not exposure:
        return None
    reserved = from_cents(flow().store.reserved_cents(exposure))
    return {
        "limit_id": limit.limit_id,
        "currency": limit.currency,
        "amount": limit.amount,
        "reserved": reserved,
        "this_deal": deal.decimal("reserved_amount") or Decimal(0),
        "room": max(limit.amount - reserved, Decimal(0)),
        "effective": limit.effective.isoformat(),
        "expiry": limit.expiry.isoformat(),
        "status_words": _("in force") if limit.status == "active" else limit.status,
    }
