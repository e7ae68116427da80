"""The officer desk's pages: the bank's queue and a deal as the bank may see it (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from tasks.pipeline import dispatch_route
from web.api import bank_deal, flow, known_id, seen_by_bank
from web.auth.session import fresh_login_required, role_required
from web.desk import desk
from web.desk.forms import ApproveForm, DeclineForm
from web.formatting import time_left, to_datetime
from web.schemas import deal_view
from workflow import keys
from workflow.checks import LIMIT_ROOM_CHECK, WHITELIST_CHECK
from workflow.deal import Deal
from workflow.errors import CoverLapsed, InvalidDecision, WrongState
from workflow.money import floor_cents
from workflow.pipeline import DealNotFound, Decision
from workflow.reasons import describe
from workflow.states import State
from workflow.store import epoch_seconds
from workflow.users import OFFICER
from workflow.visibility import holds

PER_PAGE = 25
MAX_PAGE = 100_000
DUE_SOON = timedelta(hours=2)

STATE_WORDS = {
    State.SUBMITTED: "Submitted",
    State.VERIFYING: "Being verified",
    State.ON_HOLD: "On hold",
    State.REJECTED: "Rejected",
    State.ROUTING: "Being routed",
    State.PENDING_BANK: "Pending your decision",
    State.UNPLACED: "Unplaced",
    State.APPROVED: "Approved",
    State.DISBURSED: "Disbursed",
    State.REPAID: "Repaid",
    State.OVERDUE: "Overdue",
    State.CLAIM_FILED: "Claim filed",
    State.INDEMNIFIED: "Indemnified",
    State.CLAIM_REJECTED: "Claim rejected",
    State.WITHDRAWN: "Withdrawn by the exporter",
    State.CANCELLED: "Approval cancelled",
}

CHECK_WORDS = {
    LIMIT_ROOM_CHECK: "Buyer limit has room",
    WHITELIST_CHECK: "Exporter on a whitelist (统保名单)",
}


def check_words(name: str) -> str:
    return CHECK_WORDS.get(name) or name.replace("_", " ").capitalize()


def officer_bank() -> str:
    return current_user.user.bank_id


def status_words(deal: Deal, bank_id: str) -> str:
    """What became of a deal for this bank: its state while the bank holds it, else how its
    offer ended (the bank sees nothing later)."""
    if holds(deal, bank_id) or deal.state != State.ROUTING:
        return STATE_WORDS.get(deal.state, str(deal.state))
    decision = deal.get("decision") or {}
    if decision.get("bank_id") == bank_id and decision.get("decision") == "decline":
        return "Declined by your bank"
    return "Passed on: deadline missed"


def _due_soon(deadline: str | None, now: datetime) -> bool:
    moment = to_datetime(deadline)
    return moment is not None and moment <= now + DUE_SOON


def _page_number() -> int:
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), MAX_PAGE)


def _exporter_names(deals: list[Deal]) -> dict[str, str]:
    """The exporters' names on a page, in one round trip (not one per exporter)."""
    usccs = sorted({d.fields.get("exporter_uscc", "") for d in deals} - {""})
    found = flow().reference.exporters(usccs)
    return {uscc: exporter.name if exporter else uscc for uscc, exporter in found.items()}


@desk.get("/")
@role_required(OFFICER)
def index() -> Any:
    """The queue: deals pending at the bank, most urgent deadline first; or ?show=all."""
    user = current_user.user
    bank_id = officer_bank()
    show_all = request.args.get("show") == "all"
    page = _page_number()
    store, now = flow().store, flow().clock()
    queue_key = keys.bank_queue(bank_id)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(queue_key)
    pipe.zcount(queue_key, epoch_seconds(now), epoch_seconds(now + DUE_SOON))
    pipe.zcount(queue_key, "-inf", f"({epoch_seconds(now)}")
    pending, due_soon, past_deadline = pipe.execute()
    if show_all:
        total, deals = store.page(keys.by_bank(bank_id), (page - 1) * PER_PAGE, PER_PAGE, True)
        deals = seen_by_bank(deals, bank_id)
    else:
        total, deals = store.page(queue_key, (page - 1) * PER_PAGE, PER_PAGE, False)
    names = _exporter_names(deals)
    rows = []
    for deal in deals:
        f = deal.fields
        held = holds(deal, bank_id)
        rows.append(
            {
                "id": deal.id,
                "deadline": f.get("deadline") if held else None,
                "time_left": time_left(f.get("deadline"), now) if held else "",
                "urgent": held and _due_soon(f.get("deadline"), now),
                "eligible": f.get("eligible_amount") if held else None,
                "requested": f.get("requested_amount"),
                "currency": f.get("currency", ""),
                "buyer": deal.get("buyer") or {},
                "exporter": names.get(f.get("exporter_uscc", ""), ""),
                "status": status_words(deal, bank_id),
                "updated_at": f.get("updated_at"),
            }
        )
    last_page = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    bank = flow().reference.bank(bank_id)
    return render_template(
        "desk/queue.html",
        user=user,
        bank=bank,
        bank_id=bank_id,
        rows=rows,
        show_all=show_all,
        page=page,
        last_page=last_page,
        total=total,
        counters={"pending": pending, "due_soon": due_soon, "past_deadline": past_deadline},
    )


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


def timeline(events: list[dict[str, Any]], bank_id: str) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        who = event.get("by", "")
        if who == "worker":
            actor = "Xinbao (automatic)"
        elif who.startswith(f"bank:{bank_id}:"):
            actor = f"{who.split(':', 2)[2]} ({bank_id})"
        elif who == "bank:other":
            actor = "Another bank"
        elif who.startswith("exporter:"):
            actor = "The exporter"
        else:
            actor = who
        rows.append(
            {
                "at": event.get("at"),
                "who": actor,
                "what": event.get("type", "").replace("_", " ").capitalize(),
                "to": STATE_WORDS.get(event.get("to"), event.get("to")),
                "why": [(code, describe(code)) for code in event.get("why", [])],
            }
        )
    return rows


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


def _decidable(deal: Deal, bank_id: str) -> bool:
    """Whether the decision forms belong on the page: pending this bank, deadline not passed."""
    if not holds(deal, bank_id) or deal.state != State.PENDING_BANK:
        return False
    deadline = to_datetime(deal.fields.get("deadline"))
    return deadline is None or deadline > flow().clock()


def render_deal(
    deal_id: str,
    approve_form: ApproveForm | None = None,
    decline_form: DeclineForm | None = None,
    problem: str | None = None,
    entered: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> Any:
    bank_id = officer_bank()
    deal, events = _seen(deal_id, bank_id)
    view = deal_view(deal, "bank", bank_id)
    reference = flow().reference
    exporter = reference.exporter(deal.fields["exporter_uscc"])
    checks = [
        {
            "name": check_words(name),
            "ok": result == "ok",
            "not_run": result == "not_run",
            "code": result,
            "words": "" if result in ("ok", "not_run") else describe(result),
        }
        for name, result in view["checks"].items()
    ]
    failures = [
        {**failure, "check_words": check_words(failure.get("check", ""))}
        for failure in view["failures"]
    ]
    now = flow().clock()
    held = holds(deal, bank_id)
    decidable = _decidable(deal, bank_id)
    if decidable:
        pricing = (view.get("bank") or {}).get("pricing") or {}
        if approve_form is None:
            approve_form = ApproveForm(
                formdata=None,
                amount=view["amounts"].get("eligible") or "",
                annual_rate=pricing.get("annual_rate") or "",
            )
        if decline_form is None:
            decline_form = DeclineForm(formdata=None)
    return render_template(
        "desk/deal.html",
        deal=deal,
        view=view,
        held=held,
        status=status_words(deal, bank_id),
        exporter_name=exporter.name if exporter else None,
        checks=checks,
        failures=failures,
        breakdown=eligible_breakdown(deal, view),
        time_left=time_left(deal.fields.get("deadline"), now) if held else "",
        timeline=timeline(events, bank_id),
        whitelist_words=describe((view["whitelist"] or {}).get("reason") or ""),
        bank_id=bank_id,
        decidable=decidable,
        approve_form=approve_form,
        decline_form=decline_form,
        problem=problem,
        entered=entered or [],
    ), status


FORM_FIELDS = ("amount", "annual_rate", "reason")

STALE = (
    "Nothing was recorded: this deal is no longer pending your decision (a colleague decided,"
    " the exporter withdrew it, it moved on to another bank or its deadline passed). The page"
    " below shows it as it is now."
)


@desk.post("/deals/<deal_id>/decision")
@role_required(OFFICER)
@fresh_login_required
def decision(deal_id: str) -> Any:
    """Approve or decline a deal pending at the officer's bank, through the workflow step the
    API uses; a refusal shows the deal page again with the reason and the input kept."""
    bank_id = officer_bank()
    _seen(deal_id, bank_id)  # 404 for another bank's deal or a guessed id, before anything
    approving = "approve" in request.form
    if not approving and "decline" not in request.form:
        abort(400)
    form: ApproveForm | DeclineForm = ApproveForm() if approving else DeclineForm()
    if not form.validate_on_submit():
        return _refused(deal_id, form, None, 422)
    if isinstance(form, ApproveForm):
        choice = Decision(
            approve=True,
            officer=current_user.username,
            amount=form.amount.parsed,
            annual_rate=form.annual_rate.parsed,
        )
    else:
        choice = Decision(approve=False, officer=current_user.username, reason=form.reason.data)
    try:
        deal = flow().decide(known_id(deal_id), bank_id, choice)
    except DealNotFound:
        abort(404)
    except InvalidDecision as exc:
        field = getattr(form, exc.field, None) if exc.field in FORM_FIELDS else None
        if field is not None:
            field.errors = [*field.errors, str(exc)]
            return _refused(deal_id, form, None, 422)
        return _refused(deal_id, form, f"Nothing was recorded: {exc}", 422)
    except CoverLapsed as exc:
        return _refused(
            deal_id,
            form,
            "Nothing was recorded: the buyer's credit limit this deal was verified against is"
            f" no longer in force, so it cannot be approved as covered ({exc}).",
            409,
        )
    except WrongState:
        return _refused(deal_id, form, STALE, 409)
    if deal.state == State.ROUTING:
        dispatch_route(deal.id)
        flash(f"Deal {deal.id} declined; it moves on to the next bank.", "success")
    else:
        flash(f"Deal {deal.id} approved.", "success")
    return redirect(url_for("desk.deal_page", deal_id=deal.id))


def _refused(
    deal_id: str, form: ApproveForm | DeclineForm, problem: str | None, status: int
) -> Any:
    """The deal page again: the refused form keeps its input and shows its errors."""
    bank_id = officer_bank()
    deal, _ = _seen(deal_id, bank_id)
    if isinstance(form, ApproveForm):
        approve_form, decline_form = form, None
        entered = [("Amount", form.amount.data or ""), ("Annual rate", form.annual_rate.data or "")]
    else:
        approve_form, decline_form = None, form
        entered = [("Reason", form.reason.data or "")]
    if problem is None or _decidable(deal, bank_id):
        entered = []  # the form itself shows what was entered
    return render_deal(deal_id, approve_form, decline_form, problem, entered, status)
