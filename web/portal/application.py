"""The exporter portal's new application: the form, its invoice lines and their submission."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from tasks.pipeline import publish_drain
from web.api import IDEMPOTENCY_KEY_RE, flow
from web.auth.session import role_required
from web.errors import flatten_messages
from web.portal import portal
from web.portal.deal_page import exporter_uscc
from web.portal.forms import LINE_FIELDS, LINES_STEP, ApplicationForm
from web.schemas import MAX_INVOICES, DealRequestSchema
from workflow.identifiers import bill_of_lading_key
from workflow.pipeline import DuplicateReceivable, IdempotencyKeyReused
from workflow.reference.records import BuyerLimit, Policy
from workflow.users import EXPORTER

_deal_request = DealRequestSchema()


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
