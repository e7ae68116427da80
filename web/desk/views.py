"""The officer desk's pages: the bank's queue and a deal as the bank may see it (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from tasks.pipeline import dispatch_route
from web.api import bank_deal, flow, known_id, seen_by_bank
from web.auth.session import fresh_login_required, role_required
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
from web.desk.loan_page import awaits, loan_parts, pending_payout
from web.formatting import money, time_left, to_datetime
from web.loan import MODE_WORDS, repayments, schedule
from web.loan import today as loan_today
from web.paging import PER_PAGE, page_number
from web.paging import last_page as pages_for
from web.schemas import deal_view
from web.words import bank_state_words, bank_timeline, check_rows, reason_words
from workflow import keys
from workflow.deal import Deal
from workflow.errors import (
    SAME_OFFICER,
    CoverLapsed,
    InvalidDecision,
    MakerCheckerRefused,
    WrongState,
)
from workflow.interest import AT_MATURITY
from workflow.money import floor_cents, from_cents
from workflow.pipeline import DealNotFound, Decision
from workflow.reference.records import as_text
from workflow.servicing import SERVICED
from workflow.states import State
from workflow.store import epoch_seconds
from workflow.users import OFFICER
from workflow.visibility import holds

DUE_SOON = timedelta(hours=2)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The queue's views: pending the bank's decision (""), awaiting my check, my first approvals
# awaiting someone else's check, every deal ever offered.
VIEWS = ("", "check", "mine", "all")
# The states a bank can filter its deals by: those a deal is in while a bank holds it.
BANK_STATES = tuple(
    s
    for s in State
    if s
    not in (
        State.SUBMITTED,
        State.VERIFYING,
        State.ON_HOLD,
        State.REJECTED,
        State.ROUTING,
        State.UNPLACED,
    )
)


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


def _due_soon(deadline: str | None, now: datetime) -> bool:
    moment = to_datetime(deadline)
    return moment is not None and moment <= now + DUE_SOON


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
    show = request.args.get("show", "")
    if show not in VIEWS:
        show = ""
    show_all = show == "all"
    page = page_number()
    store, now = flow().store, flow().clock()
    queue_key = keys.bank_queue(bank_id)
    awaiting_key = keys.awaiting_check(bank_id)
    mine_key = keys.first_approvals_by(bank_id, user.username)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(queue_key)
    pipe.zcount(queue_key, epoch_seconds(now), epoch_seconds(now + DUE_SOON))
    pipe.zcount(queue_key, "-inf", f"({epoch_seconds(now)}")
    pipe.zcard(awaiting_key)
    pipe.zcard(mine_key)
    pipe.zcount(keys.bank_missed(bank_id), epoch_seconds(_start_of_day(now)), "+inf")
    pending, due_soon, past_deadline, awaiting, mine, missed = pipe.execute()
    offset = (page - 1) * PER_PAGE
    state = request.args.get("state", "")
    state = state if show_all and state in BANK_STATES else ""
    if show_all:
        index = keys.bank_state(bank_id, state) if state else keys.by_bank(bank_id)
        total, deals = store.page(index, offset, PER_PAGE, True)
        deals = seen_by_bank(deals, bank_id)
    elif show == "check" and user.checker:
        total, deals = _awaiting_my_check(awaiting_key, mine_key, offset)
    elif show == "check":
        total, deals = 0, []  # only a checker checks: nothing awaits anyone else's check
    elif show == "mine":
        total, deals = store.page(mine_key, offset, PER_PAGE, False)
    else:
        total, deals = store.page(queue_key, offset, PER_PAGE, False)
    names = _exporter_names(deals)
    rows = []
    for deal in deals:
        f = deal.fields
        held = holds(deal, bank_id)
        due = f.get("deadline")
        if held and deal.get("pending_disbursement"):
            # A payout awaiting its check must be confirmed before the approval lapses.
            due = flow().lapses_at(deal, bank_id).isoformat()
        rows.append(
            {
                "id": deal.id,
                "deadline": due if held else None,
                "time_left": time_left(due, now) if held else "",
                "urgent": held and _due_soon(due, now),
                "eligible": f.get("eligible_amount") if held else None,
                "requested": f.get("requested_amount"),
                "currency": f.get("currency", ""),
                "buyer": deal.get("buyer") or {},
                "exporter": names.get(f.get("exporter_uscc", ""), ""),
                "status": status_words(deal, bank_id),
                "awaits": awaits(deal) if held else None,
                "updated_at": f.get("updated_at"),
            }
        )
    last_page = pages_for(total, PER_PAGE)
    bank = flow().reference.bank(bank_id)
    return render_template(
        "desk/queue.html",
        user=user,
        bank=bank,
        bank_id=bank_id,
        rows=rows,
        show=show,
        show_all=show_all,
        state=state,
        states=[(str(s), bank_state_words(s)) for s in BANK_STATES],
        page=page,
        last_page=last_page,
        total=total,
        counters={
            "pending": pending,
            "due_soon": due_soon,
            "past_deadline": past_deadline,
            "awaiting": awaiting,
            # Today on the pages' clock (Asia/Shanghai): swept already, or past and not yet.
            "missed_today": missed + past_deadline,
            "awaiting_me": max(awaiting - mine, 0) if user.checker else 0,
            "mine": mine,
        },
    )


def _start_of_day(now: datetime) -> datetime:
    """Midnight today in Asia/Shanghai, the day officers count in."""
    local = now.astimezone(SHANGHAI)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _awaiting_my_check(awaiting_key: str, mine_key: str, offset: int) -> tuple[int, list[Deal]]:
    """The bank's deals awaiting a check, most urgent first, without the officer's own first
    approvals (never theirs to check). One officer's own are few: they are read whole."""
    redis = flow().store.redis
    mine = {as_text(m) for m in redis.zrange(mine_key, 0, -1)}
    ids = [as_text(m) for m in redis.zrange(awaiting_key, 0, offset + PER_PAGE + len(mine) - 1)]
    others = [deal_id for deal_id in ids if deal_id not in mine]
    total = max(redis.zcard(awaiting_key) - len(mine), 0)
    return total, flow().store.get_many(others[offset : offset + PER_PAGE])


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


def _decidable(deal: Deal, bank_id: str) -> bool:
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
    decidable = _decidable(deal, bank_id)
    first = view.get("first_approval") if held else None
    forms = dict(forms or {})
    if decidable:
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
        decidable=decidable,
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
    if not _decidable(deal, bank_id):
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
