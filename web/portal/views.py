"""The exporter portal's pages: the exporter's deals, a new application, a deal and its
withdrawal. Every step goes through the workflow and the API's schemas, as the JSON API does."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError

from tasks.pipeline import publish_drain
from web.api import IDEMPOTENCY_KEY_RE, flow, known_id
from web.auth.session import role_required
from web.errors import flatten_messages
from web.loan import repayments, schedule
from web.paging import PER_PAGE, page_number
from web.paging import last_page as pages_for
from web.portal import portal
from web.portal.claims import after_due
from web.portal.deferrals import exporter_deferrals
from web.portal.forms import LINE_FIELDS, LINES_STEP, ApplicationForm, WithdrawForm
from web.schemas import MAX_INVOICES, DealRequestSchema, WithdrawSchema, deal_view
from web.words import (
    BANK_PASSED_REASONS,
    LAPSED_WORDS,
    check_rows,
    exporter_state_words,
    exporter_timeline,
    reason_words,
)
from workflow import keys
from workflow.deal import Deal
from workflow.identifiers import bill_of_lading_key
from workflow.pipeline import (
    DealNotFound,
    DuplicateReceivable,
    IdempotencyKeyReused,
    WrongState,
)
from workflow.reasons import Reason
from workflow.reference.records import BuyerLimit, Policy
from workflow.states import TERMINAL, WORKER_OWNED, State, sources_of
from workflow.users import EXPORTER
from workflow.visibility import public_event

# While a worker is moving the deal, its page reloads itself this often (no script needed).
REFRESH_SECONDS = 5

_deal_request = DealRequestSchema()
_withdraw = WithdrawSchema()


def exporter_uscc() -> str:
    return current_user.user.exporter_uscc



def _bank_names(bank_ids: set[str]) -> dict[str, str]:
    reference = flow().reference
    names = {}
    for bank_id in bank_ids:
        bank = reference.bank(bank_id)
        names[bank_id] = bank.name if bank else bank_id
    return names


def _with_bank(deal: Deal) -> str | None:
    """The bank the deal is with now, if any: the only bank the exporter is ever told of."""
    return deal.bank_id


# --- the deals list ----------------------------------------------------------------------------


@portal.get("/")
@role_required(EXPORTER)
def index() -> Any:
    """The exporter's deals, newest first, from its own index."""
    user = current_user.user
    uscc = exporter_uscc()
    page = page_number()
    total, deals = flow().store.page(keys.by_exporter(uscc), (page - 1) * PER_PAGE, PER_PAGE, True)
    names = _bank_names({b for b in (_with_bank(d) for d in deals) if b})
    rows = []
    for deal in deals:
        f = deal.fields
        bank_id = _with_bank(deal)
        rows.append(
            {
                "id": deal.id,
                "created_at": f.get("created_at"),
                "buyer": deal.get("buyer") or {},
                "currency": f.get("currency", ""),
                "invoice_total": f.get("invoice_total"),
                "requested": f.get("requested_amount"),
                "approved": f.get("approved_amount") or None,
                "state": deal.state,
                "status": exporter_state_words(deal.state),
                "bank": names.get(bank_id) if bank_id else None,
            }
        )
    last_page = pages_for(total, PER_PAGE)
    exporter = flow().reference.exporter(uscc)
    return render_template(
        "portal/index.html",
        user=user,
        exporter=exporter,
        rows=rows,
        page=page,
        last_page=last_page,
        total=total,
    )


# --- a new application -------------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """What the exporter may apply under: its own policies and the buyer limits on them."""

    policies: list[Policy]
    limits: list[BuyerLimit]

    @classmethod
    def of(cls, uscc: str, today: date) -> Choices:
        reference = flow().reference
        policies = reference.policies_of(uscc)
        limits = reference.limits_under([p.policy_no for p in policies])
        return cls(policies, [lim for lim in limits if lim.in_force_on(today)])

    def policy(self, policy_no: str | None) -> Policy | None:
        return next((p for p in self.policies if p.policy_no == policy_no), None)

    def limit(self, policy_no: str | None, buyer_code: str | None) -> BuyerLimit | None:
        return next(
            (
                lim
                for lim in self.limits
                if lim.policy_no == policy_no and lim.buyer_code == buyer_code
            ),
            None,
        )

    def buyer_groups(self) -> list[tuple[str, list[BuyerLimit]]]:
        """The buyers by policy, one limit per buyer (the first in force)."""
        groups: list[tuple[str, list[BuyerLimit]]] = []
        for policy in self.policies:
            seen: set[str] = set()
            buyers = []
            for lim in self.limits:
                if lim.policy_no == policy.policy_no and lim.buyer_code not in seen:
                    seen.add(lim.buyer_code)
                    buyers.append(lim)
            if buyers:
                groups.append((policy.policy_no, buyers))
        return groups

    @property
    def currencies(self) -> list[str]:
        return sorted({lim.currency for lim in self.limits})


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def _valid_key(key: str | None) -> bool:
    return bool(key) and len(key) <= 128 and IDEMPOTENCY_KEY_RE.fullmatch(key) is not None


def _with_choices(form: ApplicationForm, choices: Choices) -> ApplicationForm:
    form.policy_no.choices = [(p.policy_no, p.policy_no) for p in choices.policies]
    form.buyer.choices = [(lim.buyer_code, lim.buyer_name) for lim in choices.limits]
    form.currency.choices = [(c, c) for c in choices.currencies]
    return form


def _lines_of(form: ApplicationForm) -> list[dict[str, str]]:
    return [
        {name: getattr(entry.form, name).data or "" for name in LINE_FIELDS}
        for entry in form.invoices.entries
    ]


def _form_with(form: ApplicationForm, lines: list[dict[str, str]], key: str) -> ApplicationForm:
    """A fresh form holding what was typed, with these lines (numbered 0..n-1), no errors."""
    return ApplicationForm(
        formdata=None,
        idempotency_key=key,
        policy_no=form.policy_no.data,
        buyer=form.buyer.data,
        currency=form.currency.data,
        requested_amount=form.requested_amount.data,
        invoices=lines[:MAX_INVOICES],
    )


def _blank_lines(count: int) -> list[dict[str, str]]:
    return [dict.fromkeys(LINE_FIELDS, "") for _ in range(count)]


@portal.route("/deals/new", methods=["GET", "POST"])
@role_required(EXPORTER)
def new_application() -> Any:
    """The application form: works without JavaScript (lines are added and removed by submit
    buttons that re-render the form with everything typed kept)."""
    uscc = exporter_uscc()
    choices = Choices.of(uscc, flow().clock().date())
    if request.method in ("GET", "HEAD"):
        first = choices.limits[0] if choices.limits else None
        form = ApplicationForm(
            formdata=None,
            idempotency_key=_new_key(),
            policy_no=first.policy_no if first else None,
            buyer=first.buyer_code if first else None,
            currency=first.currency if first else None,
            invoices=_blank_lines(LINES_STEP),
        )
        return _render_form(_with_choices(form, choices), choices)
    if any(_bad_line_key(name) for name in request.form):
        # A tampered field name: WTForms would take "invoices-²-number" for a line number
        # and fail on it. Nothing of such a post is read.
        abort(400)
    form = _with_choices(ApplicationForm(), choices)
    key = form.idempotency_key.data if _valid_key(form.idempotency_key.data) else _new_key()
    lines = _lines_of(form)
    if form.add_lines.data:
        room = MAX_INVOICES - len(lines)
        form = _form_with(form, lines + _blank_lines(min(LINES_STEP, room)), key)
        return _render_form(_with_choices(form, choices), choices)
    if "remove" in request.form:
        # A "Remove" button was pressed: never a submission, whatever its value says.
        remove = request.form.get("remove", type=int)
        kept = [line for pos, line in enumerate(lines) if pos != remove] or _blank_lines(1)
        form = _form_with(form, kept, key)
        return _render_form(_with_choices(form, choices), choices)
    form.idempotency_key.data = key
    return _submit(form, choices, uscc)


_LINE_KEY = re.compile(r"invoices-([^-]*)-.*", re.S)


def _bad_line_key(name: str) -> bool:
    """Whether a posted name is an invoice line field whose index is not plain 0-9 digits."""
    found = _LINE_KEY.fullmatch(name)
    return found is not None and not (found.group(1).isascii() and found.group(1).isdigit())


def _submit(form: ApplicationForm, choices: Choices, uscc: str) -> Any:
    """Build the very body the API receives, load it with the API's schema, and submit it
    through the API's workflow step; every refusal goes back beside its field."""
    errors: dict[str, list[str]] = {}
    policy_no = form.policy_no.data or ""
    if choices.policy(policy_no) is None:
        errors["policy_no"] = [_("Choose one of your policies.")]
    limit = choices.limit(policy_no, form.buyer.data)
    if limit is None and "policy_no" not in errors:
        if form.buyer.data:
            errors["buyer"] = [
                _(
                    "This buyer has no credit limit in force under policy %(policy)s.",
                    policy=policy_no,
                )
            ]
        else:
            errors["buyer"] = [_("Choose a buyer.")]
    entries = [entry.form for entry in form.invoices.entries]
    filled = [pos for pos, line in enumerate(entries) if not line.is_blank()]
    currency = form.currency.data or ""
    body: dict[str, Any] = {"exporter_uscc": uscc}
    if policy_no:
        body["policy_no"] = policy_no
    if limit is not None:
        body["buyer"] = {
            "code": limit.buyer_code,
            "name": limit.buyer_name,
            "country": limit.country,
        }
    if currency:
        body["currency"] = currency
    if form.requested_amount.data:
        body["requested_amount"] = form.requested_amount.data
    body["invoices"] = [
        _given(
            {name: getattr(entries[pos], name).data for name in LINE_FIELDS}
            | {"currency": currency}
        )
        for pos in filled
    ]
    application = None
    try:
        application = _deal_request.load(body)
    except ValidationError as exc:
        for path, messages in flatten_messages(exc.messages).items():
            _add_error(errors, path, messages, filled)
    if errors or application is None:
        return _refused(form, choices, errors, None, 422)
    try:
        result = flow().submit(application, form.idempotency_key.data)
    except DuplicateReceivable as exc:
        if exc.details.get("document"):
            return _document_refused(form, choices, errors, entries, filled, exc)
        invoice = str(exc.details.get("invoice", ""))
        for pos in filled:
            if entries[pos].number.data == invoice:
                errors[f"invoices-{pos}-number"] = [
                    _("This invoice is already in another live deal of yours.")
                ]
        return _refused(
            form,
            choices,
            errors,
            _(
                "Nothing was submitted: invoice %(invoice)s is already being financed in deal"
                " %(deal)s. Remove it or wait until that deal ends.",
                invoice=invoice,
                deal=exc.details.get("deal_id", ""),
            ),
            409,
        )
    except IdempotencyKeyReused as exc:
        # This page was submitted before (then changed): a fresh key lets the exporter send
        # the changed application as a new one, deliberately.
        form.idempotency_key.data = _new_key()
        return _refused(
            form,
            choices,
            errors,
            _(
                "This form was already submitted as deal %(deal)s. If you meant to make another"
                " application, check the form below and submit it again.",
                deal=exc.details.get("deal_id", ""),
            ),
            409,
            earlier=str(exc.details.get("deal_id", "")),
        )
    if result.replayed:
        flash(_("This application had already been submitted: here it is."), "info")
    else:
        if result.drain_due:
            publish_drain()
        flash(_("Application submitted as deal %(id)s.", id=result.deal.id), "success")
    return redirect(url_for("portal.deal_page", deal_id=result.deal.id))


def _document_refused(
    form: ApplicationForm,
    choices: Choices,
    errors: dict[str, list[str]],
    entries: list[Any],
    filled: list[int],
    exc: DuplicateReceivable,
) -> Any:
    """A bill of lading or customs declaration already in a live deal: marked on every line
    that names it. The holding deal is named only if it is the exporter's own."""
    kind = str(exc.details["document"])
    number = str(exc.details.get("number", ""))
    # The lock's own comparison: a B/L in any case, with or without its - and /.
    key = bill_of_lading_key if kind == "bill_of_lading" else str
    if kind == "bill_of_lading":
        beside = _("This bill of lading is already in another live deal.")
    else:
        beside = _("This customs declaration is already in another live deal.")
    for pos in filled:
        if key(getattr(entries[pos], kind).data or "") == key(number):
            errors[f"invoices-{pos}-{kind}"] = [beside]
    deal = exc.details.get("deal_id")
    if deal and kind == "bill_of_lading":
        problem = _(
            "Nothing was submitted: bill of lading %(number)s is already being financed in"
            " your deal %(deal)s. Remove it or wait until that deal ends.",
            number=number,
            deal=deal,
        )
    elif deal:
        problem = _(
            "Nothing was submitted: customs declaration %(number)s is already being financed"
            " in your deal %(deal)s. Remove it or wait until that deal ends.",
            number=number,
            deal=deal,
        )
    elif kind == "bill_of_lading":
        problem = _(
            "Nothing was submitted: bill of lading %(number)s is already being financed in"
            " another live deal. The same goods cannot be financed twice.",
            number=number,
        )
    else:
        problem = _(
            "Nothing was submitted: customs declaration %(number)s is already being financed"
            " in another live deal. The same goods cannot be financed twice.",
            number=number,
        )
    return _refused(form, choices, errors, problem, 409)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """A field left empty is absent, as in a JSON body that leaves it out."""
    return {name: value for name, value in values.items() if value not in (None, "")}


def _add_error(
    errors: dict[str, list[str]], path: str, messages: list[str], filled: list[int]
) -> None:
    """Put one of the schema's error paths ("invoices[1].amount") beside its form field."""
    if path.startswith("invoices[") and "]" in path:
        index_text, _sep, rest = path[len("invoices[") :].partition("]")
        field = rest.lstrip(".")
        try:
            pos = filled[int(index_text)]
        except (ValueError, IndexError):
            target = "invoices"
        else:
            if field == "currency":
                target = "currency"  # every line takes the deal's currency
            elif field in LINE_FIELDS:
                target = f"invoices-{pos}-{field}"
            else:
                target = f"invoices-{pos}"
    elif path.startswith("buyer"):
        target = "buyer"
    elif path in ("policy_no", "currency", "requested_amount", "invoices"):
        target = path
    else:
        target = "_form"
    if target in ("policy_no", "buyer") and target in errors:
        return  # the form's own words on the choice already say it
    if target == "buyer" and "policy_no" in errors:
        return  # no buyer could be taken from a policy that is not the exporter's
    known = errors.setdefault(target, [])
    known.extend(m for m in messages if m not in known)


def _refused(
    form: ApplicationForm,
    choices: Choices,
    errors: dict[str, list[str]],
    problem: str | None,
    status: int,
    earlier: str | None = None,
) -> Any:
    for name in ("policy_no", "buyer", "currency", "requested_amount"):
        getattr(form, name).errors = list(errors.get(name, []))
    for pos, entry in enumerate(form.invoices.entries):
        for name in LINE_FIELDS:
            getattr(entry.form, name).errors = list(errors.get(f"invoices-{pos}-{name}", []))
    line_errors = {
        pos: errors[f"invoices-{pos}"]
        for pos in range(len(form.invoices.entries))
        if f"invoices-{pos}" in errors
    }
    return _render_form(
        form,
        choices,
        problem=problem,
        invoices_errors=errors.get("invoices", []),
        line_errors=line_errors,
        form_errors=errors.get("_form", []),
        earlier=earlier,
        status=status,
    )


def _render_form(form: ApplicationForm, choices: Choices, status: int = 200, **extra: Any) -> Any:
    extra.setdefault("problem", None)
    extra.setdefault("invoices_errors", [])
    extra.setdefault("line_errors", {})
    extra.setdefault("form_errors", [])
    extra.setdefault("earlier", None)
    has_errors = bool(
        extra["problem"]
        or extra["invoices_errors"]
        or extra["line_errors"]
        or extra["form_errors"]
        or any(getattr(form, n).errors for n in ("policy_no", "buyer", "currency"))
        or form.requested_amount.errors
        or any(getattr(e.form, n).errors for e in form.invoices.entries for n in LINE_FIELDS)
    )
    groups = choices.buyer_groups()
    return render_template(
        "portal/new.html",
        form=form,
        choices=choices,
        buyer_groups=groups,
        buyer_selected=_buyer_selected(form, choices, groups),
        can_add=len(form.invoices.entries) < MAX_INVOICES,
        max_lines=MAX_INVOICES,
        has_errors=has_errors,
        **extra,
    ), status


def _buyer_selected(
    form: ApplicationForm, choices: Choices, groups: list[tuple[str, list[BuyerLimit]]]
) -> tuple[str, str] | None:
    """The (policy, buyer) option to show selected: the chosen buyer under the chosen policy,
    else under the first policy that has it."""
    policy_no, code = form.policy_no.data, form.buyer.data
    if choices.limit(policy_no, code) is not None:
        return (policy_no, code)
    for group_policy, buyers in groups:
        if any(lim.buyer_code == code for lim in buyers):
            return (group_policy, code)
    return None


# --- a deal ------------------------------------------------------------------------------------


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
    bank_id = _with_bank(deal)
    bank_name = _bank_names({bank_id})[bank_id] if bank_id else None
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
