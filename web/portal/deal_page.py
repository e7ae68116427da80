"""The exporter portal's deal page: one of the exporter's own deals, and its withdrawal."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError

from web.api import flow, known_id
from web.auth.session import role_required
from web.errors import flatten_messages
from web.loan import repayments, schedule
from web.portal import portal
from web.portal.claims import after_due
from web.portal.deferrals import exporter_deferrals
from web.portal.forms import WithdrawForm
from web.schemas import WithdrawSchema, deal_view
from web.words import (
    BANK_PASSED_REASONS,
    LAPSED_WORDS,
    check_rows,
    exporter_state_words,
    exporter_timeline,
    reason_words,
)
from workflow.deal import Deal
from workflow.pipeline import DealNotFound, WrongState
from workflow.reasons import Reason
from workflow.states import TERMINAL, WORKER_OWNED, State, sources_of
from workflow.users import EXPORTER
from workflow.visibility import public_event

# While a worker is moving the deal, its page reloads itself this often (no script needed).
REFRESH_SECONDS = 5

_withdraw = WithdrawSchema()


def exporter_uscc() -> str:
    return current_user.user.exporter_uscc


def bank_names(bank_ids: set[str]) -> dict[str, str]:
    reference = flow().reference
    names = {}
    for bank_id in bank_ids:
        bank = reference.bank(bank_id)
        names[bank_id] = bank.name if bank else bank_id
    return names


def with_bank(deal: Deal) -> str | None:
    """The bank the deal is with now, if any: the only bank the exporter is ever told of."""
    return deal.bank_id


def _own_deal(deal_id: str) -> Deal:
    """The exporter's own deal; 404 for anyone else's or a guessed id (no hint it exists)."""
    try:
        deal = flow().store.get(known_id(deal_id))
    except DealNotFound:
        abort(404)
    if deal is None or deal.fields.get("exporter_uscc") != exporter_uscc():
        abort(404)
    return deal


def withdrawable(deal: Deal) -> bool:
    """Whether the workflow would still take a withdrawal: any state before approval."""
    return deal.state in sources_of(State.WITHDRAWN)


@portal.get("/deals/<deal_id>")
@role_required(EXPORTER)
def deal_page(deal_id: str) -> Any:
    return render_deal(_own_deal(deal_id))


def render_deal(
    deal: Deal,
    withdraw_form: WithdrawForm | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Any:
    uscc = exporter_uscc()
    view = deal_view(deal, EXPORTER, uscc)
    bank_id = with_bank(deal)
    bank_name = bank_names({bank_id})[bank_id] if bank_id else None
    pricing = deal.get("pricing") or {}
    offer = None
    if bank_id and pricing.get("bank_id") == bank_id and deal.fields.get("eligible_amount"):
        offer = {
            "bank": bank_name,
            "eligible": deal.fields.get("eligible_amount"),
            "annual_rate": pricing.get("annual_rate"),
            "tenor_days": pricing.get("tenor_days"),
            "interest": pricing.get("interest"),
            "deadline": deal.fields.get("deadline") or None,
        }
    decision = deal.get("decision") or {}
    approval = None
    if bank_id and decision.get("bank_id") == bank_id and decision.get("decision") == "approve":
        approval = {
            "bank": bank_name,
            "amount": deal.fields.get("approved_amount") or decision.get("amount"),
            "annual_rate": deal.fields.get("annual_rate") or decision.get("annual_rate"),
        }
    cancellation = deal.get("cancellation") if deal.state == State.CANCELLED else None
    checks, failures, warnings = check_rows(view)
    reasons = [
        (code, reason_words(code))
        for code in deal.get("reasons", [])
        if code not in BANK_PASSED_REASONS
    ]
    events = [public_event(e) for e in flow().store.events(deal.id)]
    can_withdraw = withdrawable(deal)
    if can_withdraw and withdraw_form is None:
        withdraw_form = WithdrawForm(formdata=None)
    # A claim waits on the insurer for days or weeks, not seconds: no reloading meanwhile.
    moving = deal.state in WORKER_OWNED and deal.state != State.CLAIM_FILED
    state_text = exporter_state_words(deal.state)
    if deal.state == State.CANCELLED and str(Reason.APPROVAL_LAPSED) in deal.get("reasons", []):
        state_text = str(LAPSED_WORDS)
    return render_template(
        "portal/deal.html",
        deal=deal,
        view=view,
        status=state_text,
        bank_name=bank_name,
        # "with" a bank only while the deal is live; the offer below says who offered what.
        with_bank=bank_name if deal.state not in TERMINAL else None,
        offer=offer,
        approval=approval,
        cancellation=cancellation,
        checks=checks,
        failures=failures,
        warnings=warnings,
        reasons=reasons,
        timeline=exporter_timeline(events, bank_id, bank_name),
        can_withdraw=can_withdraw,
        withdraw_form=withdraw_form,
        withdraw_note=deal.fields.get("withdraw_note") or None,
        # The schedule and what came in; the bank's references and officers stay the bank's.
        loan=_exporter_schedule(deal),
        repayments=[
            {k: r[k] for k in ("value_date", "amount", "interest", "principal")}
            for r in repayments(deal)
        ],
        after_due=after_due(deal.state, view),
        deferrals=exporter_deferrals(deal),
        problem=problem,
        refresh=REFRESH_SECONDS if moving else None,
    ), status


def _exporter_schedule(deal: Deal) -> dict[str, Any] | None:
    """The loan's schedule without the bank's own payment reference and officer."""
    loan = schedule(deal)
    if loan is None:
        return None
    return {k: v for k, v in loan.items() if k not in ("reference", "officer")}


@portal.post("/deals/<deal_id>/withdraw")
@role_required(EXPORTER)
def withdraw(deal_id: str) -> Any:
    """Withdraw through the workflow step the API uses; a stale form gets the deal page back
    with what happened meanwhile, never a 500."""
    deal = _own_deal(deal_id)
    form = WithdrawForm()
    body = {"reason": form.reason.data} if form.reason.data else {}
    try:
        loaded = _withdraw.load(body)
    except ValidationError as exc:
        form.reason.errors = flatten_messages(exc.messages).get("reason", [])
        if not withdrawable(deal):
            return render_deal(deal, None, _stale(deal), 409)
        return render_deal(deal, form, None, 422)
    try:
        deal = flow().withdraw(deal.id, exporter_uscc(), loaded.get("reason"))
    except DealNotFound:
        abort(404)
    except WrongState:
        current = _own_deal(deal_id)
        return render_deal(current, None, _stale(current), 409)
    flash(_("Application %(id)s withdrawn.", id=deal.id), "success")
    return redirect(url_for("portal.deal_page", deal_id=deal.id))


def _stale(deal: Deal) -> str:
    if deal.state not in TERMINAL:
        return _(
            "Nothing was changed: a bank approved this application meanwhile, so it can no"
            " longer be withdrawn. Only the approving bank can cancel its approval."
        )
    return _(
        "Nothing was changed: this application has ended meanwhile (%(state)s) and can no"
        " longer be withdrawn.",
        state=exporter_state_words(deal.state),
    )
