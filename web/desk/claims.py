"""The officer's steps after an overdue, on the deal page: the notice of possible loss, the
claim (the insurer decides in a worker) and recoveries after the indemnity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from tasks.pipeline import dispatch_settle_claim
from web.api import flow
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.arrears import form_fits
from web.desk.claim_forms import ClaimForm, NoticeForm, RecoveryForm
from web.desk.deal_page import _seen, officer_bank, render_deal
from web.formatting import money
from workflow.deal import Deal
from workflow.errors import DealNotFound, InvalidDecision, WrongState
from workflow.gateway import InsurerUnavailable
from workflow.states import State
from workflow.users import OFFICER
from workflow.visibility import holds

CLAIM_FORMS: dict[str, type] = {"notice": NoticeForm, "claim": ClaimForm, "recover": RecoveryForm}
# The fields each form shows a refusal beside (the workflow's InvalidDecision.field).
CLAIM_FIELDS = {"claim": ("loss_amount", "documents"), "recover": ("amount",)}


@desk.post("/deals/<deal_id>/notice")
@role_required(OFFICER)
@fresh_login_required
def notice(deal_id: str) -> Any:
    """Send the notice of possible loss on an overdue advance (a repeat changes nothing)."""
    return _step(deal_id, "notice")


@desk.post("/deals/<deal_id>/claim")
@role_required(OFFICER)
@fresh_login_required
def claim(deal_id: str) -> Any:
    """File the claim after the notice; a worker asks the insurer for its decision."""
    return _step(deal_id, "claim")


@desk.post("/deals/<deal_id>/recoveries")
@role_required(OFFICER)
@fresh_login_required
def recover(deal_id: str) -> Any:
    """Record money recovered from the buyer after the indemnity."""
    return _step(deal_id, "recover")


def _step(deal_id: str, action: str) -> Any:
    """The three forms through the workflow steps the API uses; a refusal shows the deal page
    again with the reason beside the field (422) or as a stale page (409), input kept."""
    bank_id = officer_bank()
    officer = current_user.user.username
    before, _events = _seen(deal_id, bank_id)  # 404 for another bank's deal, before anything
    form = CLAIM_FORMS[action]()
    if not form.validate_on_submit():
        return _refused(deal_id, action, form, None, 422)
    try:
        if action == "notice":
            repeat = bool(before.fields.get("notice_filed_at"))
            deal = flow().file_notice(before.id, bank_id, officer)
        elif action == "claim":
            repeat = bool(before.get("claim"))
            deal = flow().file_claim(
                before.id, bank_id, officer, form.loss_amount.parsed, form.document_list()
            )
        else:
            known = _recovery(before, form.reference.data)
            if known and Decimal(known["amount"]) != form.amount.parsed:
                # The workflow takes a known reference as the same recovery whatever its
                # amount: another amount under it is a mistake to show, not a repeat.
                return _refused(deal_id, action, form, _stale_words(deal_id, action, form), 409)
            repeat = known is not None
            deal = flow().record_recovery(
                before.id, bank_id, officer, form.amount.parsed, form.reference.data
            )
    except DealNotFound:
        abort(404)
    except InvalidDecision as exc:
        current, _events = _seen(deal_id, bank_id)
        name = exc.field if exc.field in CLAIM_FIELDS.get(action, ()) else None
        if name is not None:
            field = getattr(form, name)
            field.errors = [*field.errors, _field_words(exc, current, action)]
            return _refused(deal_id, action, form, None, 422)
        return _refused(
            deal_id, action, form, _("Nothing was recorded: %(why)s", why=str(exc)), 422
        )
    except WrongState:
        return _refused(deal_id, action, form, _stale_words(deal_id, action, form), 409)
    except InsurerUnavailable:
        problem = _(
            "Nothing was sent: the insurer cannot be reached right now. Try again in a few minutes."
        )
        return _refused(deal_id, action, form, problem, 503)
    if action == "claim" and deal.state == State.CLAIM_FILED:
        dispatch_settle_claim(deal.id)
    flash(*_done_words(deal, action, repeat, form))
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


def _recovery(deal: Deal, reference: str) -> dict[str, Any] | None:
    return next((r for r in deal.get("recoveries") or [] if r["reference"] == reference), None)


def _done_words(deal: Deal, action: str, repeat: bool, form: Any) -> tuple[str, str]:
    """The flash message after a step, and its category."""
    currency = deal.fields.get("currency", "")
    if action == "notice":
        day = deal.fields.get("notice_filed_at", "")
        if repeat:
            return _("The notice of possible loss was already sent, on %(day)s.", day=day), "info"
        return _(
            "Notice of possible loss on deal %(id)s sent to the insurer on %(day)s.",
            id=deal.id,
            day=day,
        ), "success"
    if action == "claim":
        filed = deal.get("claim") or {}
        if repeat:
            return _(
                "This claim was already filed, on %(day)s.", day=filed.get("filed_on", "")
            ), "info"
        return _(
            "Claim of %(amount)s filed on deal %(id)s: the insurer's decision is on its way.",
            amount=money(filed.get("loss_amount"), currency),
            id=deal.id,
        ), "success"
    if repeat:
        return _(
            "This recovery was already recorded (reference %(ref)s).", ref=form.reference.data
        ), "info"
    return _(
        "Recovery of %(amount)s recorded on deal %(id)s.",
        amount=money(form.amount.parsed, currency),
        id=deal.id,
    ), "success"


def _field_words(exc: InvalidDecision, deal: Deal, action: str) -> str:
    """A value the workflow refused, said beside its field in the page's language (the
    workflow's own message is English, for programs)."""
    currency = deal.fields.get("currency", "")
    if action == "claim" and exc.field == "loss_amount":
        return _(
            "Must be more than 0 and at most the invoice total, %(total)s.",
            total=money(deal.fields.get("invoice_total"), currency),
        )
    if action == "claim":
        return _("Tick the documents sent with the claim.")
    decided = deal.get("claim_decision") or {}
    recovered = sum((Decimal(r["amount"]) for r in deal.get("recoveries") or []), Decimal(0))
    covered = Decimal(decided.get("covered_loss") or 0)
    return _(
        "Must be more than 0 and at most %(left)s: recoveries total at most the covered loss,"
        " %(covered)s, and %(recovered)s is recorded already.",
        left=money(max(covered - recovered, Decimal(0)), currency),
        covered=money(covered, currency),
        recovered=money(recovered, currency),
    )


def _stale_words(deal_id: str, action: str, form: Any) -> str:
    """Why a form no longer fits: another claim or reference recorded first, or the deal
    moved on (repaid, decided by the insurer)."""
    deal, _events = _seen(deal_id, officer_bank())
    currency = deal.fields.get("currency", "")
    filed = deal.get("claim")
    if action == "claim" and filed:
        return _(
            "Nothing was recorded: a claim of %(amount)s was already filed on %(day)s by"
            " %(officer)s. The page below shows it as it is now.",
            amount=money(filed.get("loss_amount"), currency),
            day=filed.get("filed_on", ""),
            officer=filed.get("officer", ""),
        )
    if action == "claim" and deal.state == State.OVERDUE:
        return _("Nothing was recorded: send the notice of possible loss before the claim.")
    known = _recovery(deal, form.reference.data) if action == "recover" else None
    if known:
        return _(
            "Nothing was recorded: a recovery with reference %(ref)s is already recorded, for"
            " %(amount)s. A different recovery needs its own reference.",
            ref=form.reference.data,
            amount=money(known["amount"], currency),
        )
    return _(
        "Nothing was recorded: this deal is no longer as your page showed it (it was repaid,"
        " or the insurer decided on the claim meanwhile). The page below shows it as it is now."
    )


def _refused(deal_id: str, action: str, form: Any, problem: str | None, status: int) -> Any:
    """The deal page again: the refused form keeps its input while it still fits the deal;
    after a stale post the page offers what the deal allows now, with what was entered."""
    bank_id = officer_bank()
    deal, _events = _seen(deal_id, bank_id)
    still = holds(deal, bank_id) and form_fits(deal, action)
    forms: dict[str, Any] = {action: form} if still else {}
    entered: list[tuple[str, str]] = []
    if problem is not None and not still:
        if action == "claim":
            entered = [
                (_("Loss claimed"), form.loss_amount.data or ""),
                (_("Documents"), ", ".join(form.document_list())),
            ]
        elif action == "recover":
            entered = [
                (_("Amount"), form.amount.data or ""),
                (_("Reference"), form.reference.data or ""),
            ]
    return render_deal(deal_id, forms, problem, entered, status)
