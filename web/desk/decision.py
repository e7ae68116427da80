"""The officer desk's decision: approve, confirm a first approval, decline or send back."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from tasks.pipeline import dispatch_route
from web.api import flow, known_id
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.deal_page import _seen, decidable, officer_bank, render_deal
from web.desk.forms import ApproveForm, ConfirmForm, DeclineForm, SendBackForm
from web.formatting import money
from web.words import reason_words
from workflow.deal import Deal
from workflow.errors import (
    SAME_OFFICER,
    CoverLapsed,
    InvalidDecision,
    MakerCheckerRefused,
    WrongState,
)
from workflow.pipeline import DealNotFound, Decision
from workflow.states import State
from workflow.users import OFFICER

FORM_FIELDS = ("amount", "annual_rate", "reason")

# The buttons of the deal page's forms, each its own form class.
ACTIONS: dict[str, type] = {
    "approve": ApproveForm,
    "confirm": ConfirmForm,
    "decline": DeclineForm,
    "send_back": SendBackForm,
}


def stale() -> str:
    """The answer to a form posted after the deal moved on."""
    return _(
        "Nothing was recorded: this deal is no longer as your page showed it (a colleague"
        " decided or approved it first, the exporter withdrew it, it moved on to another bank"
        " or its deadline passed). The page below shows it as it is now."
    )


def _refusal_words(exc: MakerCheckerRefused) -> str:
    if exc.code == SAME_OFFICER:
        return _(
            "Nothing was recorded: you approved this deal first, so a different officer with"
            " the checker role must confirm it."
        )
    return _(
        "Nothing was recorded: only an officer with the checker role can confirm or send back"
        " another officer's approval."
    )


@desk.post("/deals/<deal_id>/decision")
@role_required(OFFICER)
@fresh_login_required
def decision(deal_id: str) -> Any:
    """Approve, confirm (a checker's second approval), decline or send back a deal pending at
    the officer's bank, through the workflow steps the API uses; a refusal shows the deal page
    again with the reason and the input kept."""
    bank_id = officer_bank()
    user = current_user.user
    _seen(deal_id, bank_id)  # 404 for another bank's deal or a guessed id, before anything
    action = next((name for name in ACTIONS if name in request.form), None)
    if action is None:
        abort(400)
    form = ACTIONS[action]()
    if not form.validate_on_submit():
        return _refused(deal_id, action, form, None, 422)
    try:
        if action == "send_back":
            deal = flow().return_approval(
                known_id(deal_id),
                bank_id,
                user.username,
                user.checker,
                form.reason.data,
                first_ref=form.first_ref.data or "",
            )
            flash(_("The first approval of deal %(id)s was sent back.", id=deal.id), "success")
            return redirect(url_for("desk.deal_page", deal_id=deal.id))
        if action == "approve":
            choice = Decision(
                approve=True,
                officer=user.username,
                amount=form.amount.parsed,
                annual_rate=form.annual_rate.parsed,
                may_check=user.checker,
                confirms=form.first_ref.data or "",
            )
        elif action == "confirm":
            choice = Decision(
                approve=True,
                officer=user.username,
                may_check=user.checker,
                confirms=form.first_ref.data or "",
            )
        else:
            choice = Decision(approve=False, officer=user.username, reason=form.reason.data)
        deal = flow().decide(known_id(deal_id), bank_id, choice)
    except DealNotFound:
        abort(404)
    except InvalidDecision as exc:
        field = getattr(form, exc.field, None) if exc.field in FORM_FIELDS else None
        if field is not None:
            field.errors = [*field.errors, _decision_words(exc, deal_id, bank_id)]
            return _refused(deal_id, action, form, None, 422)
        return _refused(
            deal_id, action, form, _("Nothing was recorded: %(why)s", why=str(exc)), 422
        )
    except MakerCheckerRefused as exc:
        return _refused(deal_id, action, form, _refusal_words(exc), 403)
    except CoverLapsed as exc:
        return _refused(
            deal_id,
            action,
            form,
            _(
                "Nothing was recorded: the buyer's credit limit this deal was verified against"
                " is no longer in force, so it cannot be approved as covered (%(why)s)."
                " Decline the deal.",
                why=reason_words(exc.code),
            ),
            409,
        )
    except WrongState:
        return _refused(deal_id, action, form, stale(), 409)
    if deal.state == State.ROUTING:
        dispatch_route(deal.id)
        flash(_("Deal %(id)s declined; it moves on to the next bank.", id=deal.id), "success")
    elif deal.state == State.PENDING_BANK:
        flash(
            _(
                "Your approval of deal %(id)s is recorded as the first approval. A second"
                " officer with the checker role must confirm it before the deadline.",
                id=deal.id,
            ),
            "success",
        )
    else:
        flash(_("Deal %(id)s approved.", id=deal.id), "success")
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


def _decision_words(exc: InvalidDecision, deal_id: str, bank_id: str) -> str:
    """A value the workflow refused, said beside its field in the page's language."""
    if exc.field != "amount":
        return str(exc)
    deal, _events = _seen(deal_id, bank_id)
    offered = money(deal.fields.get("eligible_amount"), deal.fields.get("currency", ""))
    return _("Must be more than 0 and at most the financeable amount, %(amount)s.", amount=offered)


def _refused(deal_id: str, action: str, form: Any, problem: str | None, status: int) -> Any:
    """The deal page again: the refused form keeps its input and shows its errors."""
    bank_id = officer_bank()
    deal, _events = _seen(deal_id, bank_id)
    if action == "approve":
        entered = [
            (_("Amount"), form.amount.data or ""),
            (_("Annual rate"), form.annual_rate.data or ""),
        ]
    elif action in ("decline", "send_back"):
        entered = [(_("Reason"), form.reason.data or "")]
    else:
        entered = []
    forms = {action: form}
    if problem is not None:
        # The deal may have moved on: the forms it allows now are shown afresh.
        if not _still_applies(deal, bank_id, action, form):
            forms = {}
        else:
            entered = []  # the form itself shows what was entered
    else:
        entered = []
    return render_deal(deal_id, forms, problem, entered, status)


def _still_applies(deal: Deal, bank_id: str, action: str, form: Any) -> bool:
    """Whether the refused form still fits the deal as it is now (then it is shown again with
    the input kept; else the page offers what the deal allows now)."""
    if not decidable(deal, bank_id):
        return False
    first = deal.get("first_approval")
    if action == "approve":
        return first is None
    if action in ("confirm", "send_back"):
        if not first or first.get("ref") != form.first_ref.data:
            return False
        user = current_user.user
        mine = first.get("officer") == user.username
        return user.checker and not mine if action == "confirm" else user.checker or mine
    return True
