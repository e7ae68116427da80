"""The officer's disbursement and repayment forms on the deal page (the bank's servicing)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from web.api import flow
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.deal_page import _seen, officer_bank, render_deal
from web.desk.forms import DisburseForm, RepayForm
from web.formatting import money
from web.loan import approved_on, owed_on, repayments
from workflow.business_days import business_date
from workflow.deal import Deal
from workflow.errors import InvalidDecision, WrongState
from workflow.pipeline import DealNotFound, Disbursement, Repayment
from workflow.servicing import SERVICED
from workflow.states import State
from workflow.users import OFFICER
from workflow.visibility import holds


def stale_servicing() -> str:
    """The answer to a disbursement or repayment form posted after the deal moved on."""
    return _(
        "Nothing was recorded: this deal is no longer as your page showed it (a colleague"
        " recorded a payment first, or the approval was cancelled or lapsed). The page below"
        " shows it as it is now."
    )


def _servicing_words(exc: InvalidDecision, deal: Deal, action: str, form: Any) -> str:
    """A value the workflow refused, said beside its field in the page's language (the
    workflow's own message is English, for programs)."""
    currency = deal.fields.get("currency", "")
    today = business_date(flow().clock())
    entered = getattr(form.value_date, "parsed", None)
    loan = deal.get("loan") or {}
    if action == "disburse" and exc.field == "amount":
        return _(
            "Must be more than 0 and at most the approved amount, %(amount)s.",
            amount=money(deal.fields.get("approved_amount"), currency),
        )
    if action == "disburse" and exc.field == "value_date":
        due = max(inv.due_date for inv in deal.application.invoices)
        if entered is not None and entered > today:
            return _("Must not be in the future (today is %(today)s).", today=today)
        if entered is not None and entered >= due:
            return _("Must be before the due date, %(due)s.", due=due)
        return _(
            "Must be from the day of the approval (%(approved)s) to today (%(today)s).",
            approved=approved_on(deal),
            today=today,
        )
    if action == "repay" and exc.field == "amount" and loan and entered is not None:
        principal, interest = owed_on(loan, entered)
        return _(
            "Must be more than 0 and at most what is owed on %(day)s: %(owed)s"
            " (%(principal)s principal, %(interest)s interest).",
            day=entered,
            owed=money(principal + interest, currency),
            principal=money(principal, currency),
            interest=money(interest, currency),
        )
    if action == "repay" and exc.field == "value_date" and loan:
        if entered is not None and entered > today:
            return _("Must not be in the future (today is %(today)s).", today=today)
        return _(
            "Must not be before the last value date on this advance, %(last)s.",
            last=loan.get("last_value_date", ""),
        )
    return str(exc)


SERVICING_FORMS: dict[str, type] = {"disburse": DisburseForm, "repay": RepayForm}


@desk.post("/deals/<deal_id>/disbursement")
@role_required(OFFICER)
@fresh_login_required
def disburse(deal_id: str) -> Any:
    """Record the advance the bank paid out on an approved deal."""
    return _service(deal_id, "disburse")


@desk.post("/deals/<deal_id>/repayments")
@role_required(OFFICER)
@fresh_login_required
def repay(deal_id: str) -> Any:
    """Record money the bank received on a disbursed deal."""
    return _service(deal_id, "repay")


def _service(deal_id: str, action: str) -> Any:
    """Both servicing forms through the workflow steps the API uses; a refusal shows the deal
    page again with the reason beside the field (422) or as a stale page (409), input kept."""
    bank_id = officer_bank()
    user = current_user.user
    before, _events = _seen(deal_id, bank_id)  # 404 for another bank's deal, before anything
    form = SERVICING_FORMS[action]()
    if not form.validate_on_submit():
        return _service_refused(deal_id, action, form, None, 422)
    amount, value_date = form.amount.parsed, form.value_date.parsed
    reference = form.reference.data
    try:
        if action == "disburse":
            repeat = (before.get("loan") or {}).get("reference") == reference
            deal = flow().disburse(
                before.id, bank_id, Disbursement(user.username, amount, value_date, reference)
            )
        else:
            repeat = any(r["reference"] == reference for r in repayments(before))
            deal = flow().repay(
                before.id, bank_id, Repayment(user.username, amount, value_date, reference)
            )
    except DealNotFound:
        abort(404)
    except InvalidDecision as exc:
        current, _events = _seen(deal_id, bank_id)
        field = getattr(form, exc.field, None) if exc.field in SERVICING_FIELDS else None
        if field is not None:
            field.errors = [*field.errors, _servicing_words(exc, current, action, form)]
            return _service_refused(deal_id, action, form, None, 422)
        problem = _("Nothing was recorded: %(why)s", why=str(exc))
        return _service_refused(deal_id, action, form, problem, 422)
    except WrongState:
        return _service_refused(deal_id, action, form, _stale_words(deal_id, action, form), 409)
    currency = deal.fields.get("currency", "")
    entered = deal.get("pending_disbursement") if action == "disburse" else None
    if entered:
        # At or above the bank's second-approval amount nothing is paid out yet.
        flash(*_entered_words(deal, entered, before))
    elif repeat:
        flash(_("This payment was already recorded (reference %(ref)s).", ref=reference), "info")
    elif action == "disburse":
        flash(
            _(
                "Disbursement of %(amount)s recorded on deal %(id)s (value date %(day)s).",
                amount=money(amount, currency),
                id=deal.id,
                day=value_date,
            ),
            "success",
        )
    elif deal.state == State.REPAID:
        flash(_("Repayment recorded: deal %(id)s is repaid in full.", id=deal.id), "success")
    else:
        flash(
            _(
                "Repayment of %(amount)s recorded on deal %(id)s (value date %(day)s).",
                amount=money(amount, currency),
                id=deal.id,
                day=value_date,
            ),
            "success",
        )
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


SERVICING_FIELDS = ("amount", "value_date", "reference")


def _entered_words(deal: Deal, entered: dict[str, Any], before: Deal) -> tuple[str, str]:
    """The flash after a disbursement a checker must confirm: entered now, or before."""
    amount = money(entered["amount"], deal.fields.get("currency", ""))
    if before.get("pending_disbursement"):
        return _(
            "This disbursement was already entered (reference %(ref)s): it awaits a checker.",
            ref=entered["reference"],
        ), "info"
    return _(
        "Disbursement of %(amount)s entered on deal %(id)s: nothing is paid out yet. At this"
        " amount a second officer with the checker role must confirm it.",
        amount=amount,
        id=deal.id,
    ), "success"


def _stale_words(deal_id: str, action: str, form: Any) -> str:
    """Why a servicing form no longer fits: a reference used before, or the deal moved on."""
    deal, _events = _seen(deal_id, officer_bank())
    reference = form.reference.data
    currency = deal.fields.get("currency", "")
    known = [r for r in repayments(deal) if r["reference"] == reference]
    if action == "repay" and known:
        return _(
            "Nothing was recorded: a repayment with reference %(ref)s is already recorded, for"
            " %(amount)s. A different repayment needs its own reference.",
            ref=reference,
            amount=money(known[0]["amount"], currency),
        )
    loan = deal.get("loan")
    pending = deal.get("pending_disbursement")
    if action == "disburse" and pending:
        return _(
            "Nothing was recorded: a disbursement of %(amount)s (reference %(ref)s) entered by"
            " %(officer)s awaits a checker. It must be confirmed or sent back first.",
            amount=money(pending["amount"], currency),
            ref=pending["reference"],
            officer=pending["officer"],
        )
    if action == "disburse" and loan:
        return _(
            "Nothing was recorded: this deal was already disbursed (%(amount)s, reference"
            " %(ref)s, by %(officer)s). The page below shows it as it is now.",
            amount=money(loan["principal"], currency),
            ref=loan.get("reference", ""),
            officer=loan.get("officer", ""),
        )
    return stale_servicing()


def _service_refused(deal_id: str, action: str, form: Any, problem: str | None, status: int) -> Any:
    """The deal page again: the refused form keeps its input while it still fits the deal;
    after a stale post the page offers what the deal allows now, with what was entered."""
    deal, _events = _seen(deal_id, officer_bank())
    still = holds(deal, officer_bank()) and (
        deal.state == State.APPROVED and not deal.get("pending_disbursement")
        if action == "disburse"
        else deal.state in SERVICED
    )
    entered: list[tuple[str, str]] = []
    forms: dict[str, Any] = {action: form} if still else {}
    if problem is not None and not still:
        entered = [
            (_("Amount"), form.amount.data or ""),
            (_("Value date"), form.value_date.data or ""),
            (_("Reference"), form.reference.data or ""),
        ]
    return render_deal(deal_id, forms, problem, entered, status)
