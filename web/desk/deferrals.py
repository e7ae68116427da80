"""The officer's deferral (延期还本付息) on the deal page: the insurer is asked, and the advance's
due date moves only when its cover follows."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from web.api import flow
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.deal_page import _seen, officer_bank, render_deal
from web.desk.forms import DeferForm
from web.desk.loan_page import form_fits
from web.loan import today
from web.words import reason_words
from workflow.deal import Deal
from workflow.errors import DealNotFound, DeferralRefused, InvalidDecision, WrongState
from workflow.gateway import InsurerUnavailable
from workflow.pipeline import Deferral
from workflow.users import OFFICER
from workflow.visibility import holds


@desk.post("/deals/<deal_id>/deferrals")
@role_required(OFFICER)
@fresh_login_required
def defer(deal_id: str) -> Any:
    """Ask the insurer to let its cover follow a new due date and, when it agrees, move the
    advance there; a refusal shows the deal page again with the reasons and the input kept."""
    bank_id = officer_bank()
    officer = current_user.user.username
    before, _events = _seen(deal_id, bank_id)  # 404 for another bank's deal, before anything
    form = DeferForm()
    if not form.validate_on_submit():
        return _refused(deal_id, form, None, 422)
    new_due, reference = form.new_due_date.parsed, form.reference.data
    repeat = _asked(before, reference) is not None
    try:
        deal = flow().defer(
            before.id, bank_id, Deferral(officer, new_due, reference, form.note.data or "")
        )
    except DealNotFound:
        abort(404)
    except InvalidDecision as exc:
        if exc.field != "new_due_date":
            return _refused(deal_id, form, _("Nothing was recorded: %(why)s", why=str(exc)), 422)
        current, _events = _seen(deal_id, bank_id)
        form.new_due_date.errors = [*form.new_due_date.errors, _date_words(current, new_due)]
        return _refused(deal_id, form, None, 422)
    except DeferralRefused as exc:
        form.refused_reasons = [(code, reason_words(code)) for code in exc.reasons]
        problem = _(
            "Not deferred: the insurer refused to let its cover follow a due date of %(day)s."
            " The due date stays as it was.",
            day=new_due,
        )
        return _refused(deal_id, form, problem, 422)
    except WrongState:
        return _refused(deal_id, form, _stale_words(deal_id, form), 409)
    except InsurerUnavailable:
        problem = _(
            "Nothing was recorded: the insurer cannot be reached right now, so the deferral"
            " could not be asked. Try again in a few minutes."
        )
        return _refused(deal_id, form, problem, 503)
    loan = deal.get("loan") or {}
    if repeat:
        flash(_("This deferral was already recorded (reference %(ref)s).", ref=reference), "info")
    else:
        flash(
            _(
                "Deferral granted by the insurer: deal %(id)s now falls due on %(day)s.",
                id=deal.id,
                day=loan.get("due_date", ""),
            ),
            "success",
        )
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


def _asked(deal: Deal, reference: str) -> dict[str, Any] | None:
    return next((d for d in deal.get("deferrals") or [] if d["reference"] == reference), None)


def _date_words(deal: Deal, new_due: date) -> str:
    """Why the workflow refused the new due date, in the page's language (its own message is
    English, for programs); the same rules, read from the deal as it is now."""
    due = (deal.get("loan") or {}).get("due_date", "")
    on = today()
    if due and new_due <= date.fromisoformat(due):
        return _("Must be after the current due date, %(due)s.", due=due)
    if new_due <= on:
        return _("Must be after today (%(today)s).", today=on)
    latest = flow().settings.deferral_latest_date
    if latest is not None and new_due > latest:
        return _(
            "Must be on or before %(latest)s, the latest date a deferral may reach.", latest=latest
        )
    return _("This date cannot be the new due date.")


def _stale_words(deal_id: str, form: Any) -> str:
    """Why the form no longer fits: its reference used for another date, or the deal moved
    on (repaid, a claim filed)."""
    deal, _events = _seen(deal_id, officer_bank())
    known = _asked(deal, form.reference.data)
    if known:
        return _(
            "Nothing was recorded: reference %(ref)s was already used on %(day)s to ask for a"
            " due date of %(due)s. A new request needs its own reference.",
            ref=known["reference"],
            day=known["asked_on"],
            due=known["new_due_date"],
        )
    return _(
        "Nothing was recorded: this advance can no longer be deferred (it was repaid, or a"
        " claim was filed meanwhile). The page below shows it as it is now."
    )


def _refused(deal_id: str, form: Any, problem: str | None, status: int) -> Any:
    """The deal page again: the refused form keeps its input while the deal still takes a
    deferral; after a stale post the page shows the deal as it is now, with what was entered."""
    bank_id = officer_bank()
    deal, _events = _seen(deal_id, bank_id)
    still = holds(deal, bank_id) and form_fits(deal, current_user.user, "defer")
    forms: dict[str, Any] = {"defer": form} if still else {}
    entered: list[tuple[str, str]] = []
    if problem is not None and not still:
        entered = [
            (_("New due date"), form.new_due_date.data or ""),
            (_("Reference"), form.reference.data or ""),
        ]
    return render_deal(deal_id, forms, problem, entered, status)
