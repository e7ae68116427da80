"""The checker's answer to a large disbursement on the deal page: confirm it (the advance is
then paid out on the maker's terms), or send it back; its maker recalls it the same way."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from web.api import flow
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.deal_page import _seen, officer_bank, render_deal
from web.desk.forms import ConfirmPayoutForm, ReturnPayoutForm
from web.desk.loan_page import form_fits
from web.formatting import money
from workflow.errors import SAME_OFFICER, DealNotFound, MakerCheckerRefused, WrongState
from workflow.officers import officer_id
from workflow.users import OFFICER
from workflow.visibility import holds

ACTIONS: dict[str, type] = {
    "confirm_payout": ConfirmPayoutForm,
    "send_back_payout": ReturnPayoutForm,
}


def refusal_words(exc: MakerCheckerRefused) -> str:
    """The maker-checker rule a check broke, in the page's language."""
    if exc.code == SAME_OFFICER:
        return _(
            "Nothing was recorded: you entered this disbursement, so a different officer with"
            " the checker role must confirm it."
        )
    return _(
        "Nothing was recorded: only an officer with the checker role can confirm another"
        " officer's disbursement, or send it back."
    )


def stale_words() -> str:
    return _(
        "Nothing was recorded: this disbursement is no longer as your page showed it (a"
        " colleague confirmed it or sent it back, its maker recalled it, or the approval"
        " lapsed). The page below shows the deal as it is now."
    )


@desk.post("/deals/<deal_id>/disbursement/check")
@role_required(OFFICER)
@fresh_login_required
def check_payout(deal_id: str) -> Any:
    """Confirm or send back the disbursement the page showed (its hidden ``payout_ref``),
    through the workflow steps the API uses; a refusal shows the deal page again."""
    bank_id = officer_bank()
    user = current_user.user
    before, _events = _seen(deal_id, bank_id)  # 404 for another bank's deal, before anything
    action = next((name for name in ACTIONS if name in request.form), None)
    if action is None:
        abort(400)
    form = ACTIONS[action]()
    if not form.validate_on_submit():
        return _refused(deal_id, action, form, None, 422)
    ref = form.payout_ref.data or ""
    loan = before.get("loan") or {}
    repeat = loan.get("checked_ref") == ref
    try:
        if action == "confirm_payout":
            deal = flow().confirm_disbursement(before.id, bank_id, user.username, user.checker, ref)
        else:
            deal = flow().return_disbursement(
                before.id, bank_id, user.username, user.checker, form.reason.data, ref
            )
    except DealNotFound:
        abort(404)
    except MakerCheckerRefused as exc:
        return _refused(deal_id, action, form, refusal_words(exc), 403)
    except WrongState:
        return _refused(deal_id, action, form, stale_words(), 409)
    currency = deal.fields.get("currency", "")
    if action == "send_back_payout":
        returned = deal.get("returned_disbursement") or {}
        if officer_id(user.username) == returned.get("officer"):
            flash(_("You recalled your disbursement on deal %(id)s.", id=deal.id), "success")
        else:
            flash(
                _("The disbursement on deal %(id)s was sent back to its maker.", id=deal.id),
                "success",
            )
    elif repeat:
        flash(_("This disbursement was already confirmed."), "info")
    else:
        paid = deal.get("loan") or {}
        flash(
            _(
                "Disbursement of %(amount)s on deal %(id)s confirmed: the advance is recorded"
                " (value date %(day)s).",
                amount=money(paid.get("principal"), currency),
                id=deal.id,
                day=paid.get("value_date", ""),
            ),
            "success",
        )
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


def _refused(deal_id: str, action: str, form: Any, problem: str | None, status: int) -> Any:
    """The deal page again: the refused form keeps its input while it still fits the deal
    (the same entry, this officer); else the page offers what the deal allows now."""
    bank_id = officer_bank()
    deal, _events = _seen(deal_id, bank_id)
    user = current_user.user
    still = holds(deal, bank_id) and form_fits(deal, user, action, form.payout_ref.data or "")
    forms: dict[str, Any] = {action: form} if still else {}
    entered: list[tuple[str, str]] = []
    if problem is not None and not still and action == "send_back_payout":
        entered = [(_("Reason"), form.reason.data or "")]
    return render_deal(deal_id, forms, problem, entered, status)
