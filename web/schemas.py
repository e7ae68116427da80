"""marshmallow schemas of the JSON API: what requests must hold and what responses show."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from workflow.checks import check_results
from workflow.deal import Application, Buyer, Deal, Invoice
from workflow.feed import MAX_LIMIT as FEED_MAX_LIMIT
from workflow.feed import FeedCursorInvalid, parse_cursor
from workflow.identifiers import (
    validate_bill_of_lading,
    validate_customs_declaration,
    validate_paragraphs,
    validate_text,
)
from workflow.identifiers import (
    validate_code as _code,
)
from workflow.identifiers import (
    validate_country as _country,
)
from workflow.identifiers import (
    validate_currency as _currency,
)
from workflow.identifiers import (
    validate_uscc as _uscc,
)
from workflow.money import MoneyFormatError, parse_amount
from workflow.reasons import describe
from workflow.states import State
from workflow.visibility import BANK_RECORD_FIELDS

MAX_INVOICES = 50
RATE_RE = re.compile(r"0(?:\.[0-9]{1,6})?|1(?:\.0{1,6})?")


class Money(fields.Field):
    """A positive amount as a decimal string ("125000.00"); JSON numbers are refused."""

    default_error_messages = {"positive": "must be greater than 0"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        try:
            amount = parse_amount(value)
        except MoneyFormatError as exc:
            raise ValidationError(str(exc)) from exc
        if amount <= 0:
            raise self.make_error("positive")
        return amount

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Rate(fields.Field):
    """An annual rate as a decimal fraction string ("0.0450"), between 0 and 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not RATE_RE.fullmatch(value):
            raise ValidationError('must be a decimal string from "0" to "1", e.g. "0.0450"')
        return Decimal(value)


class BuyerSchema(Schema):
    code = fields.String(required=True, validate=_code)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate_text])
    country = fields.String(required=True, validate=_country)


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before it is validated; ``upper`` also
    upper-cases it (a bill of lading number is the same document in any case)."""

    def __init__(self, *args: Any, upper: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.upper = upper

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return text.upper() if self.upper else text


class InvoiceSchema(Schema):
    number = fields.String(required=True, validate=_code)
    amount = Money(required=True)
    currency = fields.String(required=True, validate=_currency)
    issue_date = fields.Date(required=True)
    shipment_date = fields.Date(required=True)
    due_date = fields.Date(required=True)
    # Trade documents (四流合一): optional unless the bank requires them; null = not given.
    bill_of_lading = TrimmedString(
        load_default=None, allow_none=True, upper=True, validate=validate_bill_of_lading
    )
    customs_declaration = TrimmedString(
        load_default=None, allow_none=True, validate=validate_customs_declaration
    )

    @validates_schema(skip_on_field_errors=False)
    def _dates(self, data: dict, **_: Any) -> None:
        shipped, due = data.get("shipment_date"), data.get("due_date")
        if shipped and due and due <= shipped:
            raise ValidationError("must be after shipment_date", "due_date")
        issued = data.get("issue_date")
        if issued and due and due < issued:
            raise ValidationError("must not be before issue_date", "due_date")


class DealRequestSchema(Schema):
    exporter_uscc = fields.String(required=True, validate=_uscc)
    policy_no = fields.String(required=True, validate=_code)
    buyer = fields.Nested(BuyerSchema, required=True)
    invoices = fields.List(
        fields.Nested(InvoiceSchema),
        required=True,
        validate=validate.Length(
            min=1, max=MAX_INVOICES, error=f"give between 1 and {MAX_INVOICES} invoices"
        ),
    )
    requested_amount = Money(required=True)
    currency = fields.String(required=True, validate=_currency)

    @validates_schema(skip_on_field_errors=False)
    def _consistent(self, data: dict, **_: Any) -> None:
        invoices = [inv for inv in data.get("invoices") or [] if isinstance(inv, dict)]
        errors: dict[str, Any] = {}
        currency = data.get("currency")
        per_invoice: dict[int, dict[str, list[str]]] = {}
        seen: set[str] = set()
        for index, inv in enumerate(invoices):
            if currency and inv.get("currency") != currency:
                per_invoice.setdefault(index, {})["currency"] = [
                    f"must be the deal currency {currency}: one deal, one currency"
                ]
            if inv.get("number") in seen:
                per_invoice.setdefault(index, {})["number"] = ["appears twice in this request"]
            seen.add(inv.get("number"))
        if per_invoice:
            errors["invoices"] = per_invoice
        total = sum((inv.get("amount", Decimal(0)) for inv in invoices), Decimal(0))
        requested = data.get("requested_amount")
        amounts_valid = invoices and all("amount" in inv for inv in invoices)
        if amounts_valid and requested is not None and not per_invoice and requested > total:
            errors["requested_amount"] = [f"must not exceed the invoices' total {total}"]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make(self, data: dict, **_: Any) -> Application:
        return Application(
            exporter_uscc=data["exporter_uscc"],
            policy_no=data["policy_no"],
            buyer=Buyer(**data["buyer"]),
            invoices=tuple(Invoice(**inv) for inv in data["invoices"]),
            requested_amount=data["requested_amount"],
            currency=data["currency"],
        )


class DecisionSchema(Schema):
    decision = fields.String(
        required=True, validate=validate.OneOf(["approve", "decline", "send_back"])
    )
    amount = Money()
    annual_rate = Rate()
    reason = fields.String(validate=[validate.Length(min=1, max=500), validate_paragraphs])
    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])

    @validates_schema
    def _reason_for_decline(self, data: dict, **_: Any) -> None:
        if data.get("decision") == "decline" and not data.get("reason"):
            raise ValidationError("a decline needs a reason", "reason")
        if data.get("decision") == "send_back" and not data.get("reason"):
            raise ValidationError("sending an approval back needs a reason", "reason")
        if data.get("decision") != "approve" and ("amount" in data or "annual_rate" in data):
            raise ValidationError("only an approval takes an amount", "amount")


class WithdrawSchema(Schema):
    reason = fields.String(validate=[validate.Length(min=1, max=500), validate_paragraphs])


class CancelSchema(Schema):
    reason = fields.String(
        required=True, validate=[validate.Length(min=1, max=500), validate_paragraphs]
    )
    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])


class DisbursementSchema(Schema):
    """The advance the approving bank paid out."""

    amount = Money(required=True)
    value_date = fields.Date(required=True)
    reference = fields.String(
        required=True, validate=[validate.Length(min=1, max=64), validate_text]
    )
    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])


class RepaymentSchema(DisbursementSchema):
    """Money the bank received on the advance; ``reference`` identifies it (a repeat with the
    same reference is the same repayment)."""


class DisbursementCheckSchema(Schema):
    """A checker's answer to a disbursement entered for a check: confirm it on the maker's
    terms or send it back; ``ref`` names the entry the checker saw."""

    decision = fields.String(required=True, validate=validate.OneOf(["confirm", "send_back"]))
    ref = fields.String(required=True, validate=validate.Regexp(r"\A[0-9a-f]{16}\Z"))
    reason = fields.String(validate=[validate.Length(min=1, max=500), validate_paragraphs])
    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])

    @validates_schema
    def _reason_to_send_back(self, data: dict, **_: Any) -> None:
        if data.get("decision") == "send_back" and not data.get("reason"):
            raise ValidationError("sending a disbursement back needs a reason", "reason")


class DeferralSchema(Schema):
    """A deferral (延期还本付息) of a disbursed advance's due date; ``reference`` identifies it
    (the same reference again is the same request and gets the same answer)."""

    new_due_date = fields.Date(required=True)
    reference = fields.String(
        required=True, validate=[validate.Length(min=1, max=64), validate_text]
    )
    note = fields.String(validate=[validate.Length(min=1, max=500), validate_paragraphs])
    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])


class NoticeSchema(Schema):
    """The notice of possible loss (可能损失通知书) on an overdue advance."""

    officer = fields.String(validate=[validate.Length(min=1, max=64), validate_text])


class ClaimSchema(NoticeSchema):
    """The claim for the loss: its amount and the documents sent with it."""

    loss_amount = Money(required=True)
    documents = fields.List(
        fields.String(validate=[validate.Length(min=1, max=200), validate_text]),
        required=True,
        validate=validate.Length(min=1, max=50),
    )


class RecoverySchema(NoticeSchema):
    """Money recovered from the buyer after the indemnity."""

    amount = Money(required=True)
    reference = fields.String(
        required=True, validate=[validate.Length(min=1, max=64), validate_text]
    )


class ListQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    state = fields.String(validate=validate.OneOf(["pending_bank"]))


# --- responses (documentation and serialisation) --------------------------------------------


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class AmountsSchema(Schema):
    requested = fields.String()
    invoice_total = fields.String()
    insured = fields.String(allow_none=True)
    eligible = fields.String(allow_none=True)
    approved = fields.String(allow_none=True)
    reserved_on_limit = fields.String(allow_none=True)


class BankOfferSchema(Schema):
    bank_id = fields.String()
    deadline = fields.String(allow_none=True)
    pricing = fields.Dict(allow_none=True)


class DealSchema(Schema):
    id = fields.String()
    state = fields.String()
    version = fields.Integer()
    exporter_uscc = fields.String()
    policy_no = fields.String()
    buyer = fields.Nested(BuyerSchema)
    invoices = fields.List(fields.Dict())
    currency = fields.String()
    amounts = fields.Nested(AmountsSchema)
    checks = fields.Dict(keys=fields.String(), values=fields.String())
    failures = fields.List(fields.Dict())
    reasons = fields.List(fields.String())
    whitelist = fields.Dict(allow_none=True)
    warnings = fields.List(
        fields.Dict(keys=fields.String(), values=fields.String()),
        metadata={
            "description": "Recorded at verification, never a refusal: `code` "
            "(BUYER_NAME_MISMATCH), `message`, `stated_name` and `insurer_name`"
        },
    )
    bank = fields.Nested(BankOfferSchema, allow_none=True)
    decision = fields.Dict(allow_none=True)
    first_approval = fields.Dict(allow_none=True)
    loan = fields.Dict(allow_none=True)
    repayments = fields.List(fields.Dict(), allow_none=True)
    arrears = fields.Dict(allow_none=True)
    claim = fields.Dict(allow_none=True)
    claim_decision = fields.Dict(allow_none=True)
    recoveries = fields.List(fields.Dict(), allow_none=True)
    pending_disbursement = fields.Dict(
        allow_none=True,
        metadata={"description": "A disbursement awaiting a checker (the bank holding it only)"},
    )
    hold = fields.Dict(
        allow_none=True,
        metadata={"description": "While on_hold: `reason` (INSURER_UNAVAILABLE) and `until`"},
    )
    deferrals = fields.List(
        fields.Dict(),
        allow_none=True,
        metadata={"description": "Each deferral asked: dates, days past due, the insurer's answer"},
    )
    offered_banks = fields.List(fields.String())
    created_at = fields.String()
    updated_at = fields.String()


class DealPageSchema(Schema):
    items = fields.List(fields.Nested(DealSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class EventSchema(Schema):
    v = fields.Integer()
    at = fields.String()
    by = fields.String()
    type = fields.String()
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String()
    why = fields.List(fields.String())
    set = fields.Dict()


class EventListSchema(Schema):
    deal_id = fields.String()
    events = fields.List(fields.Nested(EventSchema))


class FeedQuerySchema(Schema):
    """GET /api/v1/events: the cursor to read after (none: from the oldest kept) and how many."""

    after = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=FEED_MAX_LIMIT))


    @post_load
    def _cursor(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "after" in data:
            try:
                data["after"] = parse_cursor(data["after"])
            except FeedCursorInvalid as exc:
                raise ValidationError({"after": [str(exc)]}) from None
        return data


class FeedEventSchema(EventSchema):
    """One event of a bank's feed: a deal event as the bank sees it, with where it stands."""

    cursor = fields.String(metadata={"description": "Resume after this entry: ?after=<cursor>"})
    event_id = fields.String(
        metadata={"description": "<deal id>:<event version>, the same in every copy (de-dup)"}
    )
    deal_id = fields.String()


class FeedPageSchema(Schema):
    events = fields.List(fields.Nested(FeedEventSchema))
    next = fields.String(
        allow_none=True,
        metadata={"description": "The cursor to ask with next (the one given if no events)"},
    )


def explained(failure: dict[str, str]) -> dict[str, str]:
    """A failed check with its reason in words beside the code."""
    return {**failure, "message": describe(failure.get("reason", ""))}


# The same fields the exporter's event log leaves out of these records.
BANK_INTERNALS = BANK_RECORD_FIELDS


def _without_bank_internals(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in BANK_INTERNALS}


def deal_view(deal: Deal, viewer_role: str, viewer_id: str) -> dict[str, Any]:
    """The API's representation of a deal for an exporter or a bank.

    A bank that no longer holds a deal (it declined or let the deadline pass) still sees the
    application it was shown, but nothing of what other banks offered or decided.
    """
    f = deal.fields
    bank_id = deal.bank_id
    view: dict[str, Any] = {
        "id": deal.id,
        "state": str(deal.state),
        "version": deal.version,
        "exporter_uscc": f["exporter_uscc"],
        "policy_no": f["policy_no"],
        "buyer": deal.get("buyer"),
        "invoices": deal.get("invoices"),
        "currency": f["currency"],
        "amounts": {
            "requested": f.get("requested_amount"),
            "invoice_total": f.get("invoice_total"),
            "insured": f.get("insured_amount") or None,
            "eligible": f.get("eligible_amount") or None,
            "approved": f.get("approved_amount") or None,
            "reserved_on_limit": f.get("reserved_amount") or None,
        },
        "checks": check_results(deal),
        "failures": [explained(f) for f in deal.get("failures", [])],
        "reasons": deal.get("reasons", []),
        "whitelist": deal.get("whitelist"),
        "warnings": [
            {**w, "message": describe(w.get("code", ""), default="")}
            for w in deal.get("warnings", [])
        ],
        "bank": (
            {
                "bank_id": bank_id,
                "deadline": f.get("deadline") or None,
                "pricing": deal.get("pricing"),
            }
            if bank_id
            else None
        ),
        "decision": deal.get("decision"),
        "first_approval": deal.get("first_approval"),
        "pending_disbursement": deal.get("pending_disbursement"),
        "loan": deal.get("loan"),
        "repayments": deal.get("repayments"),
        "arrears": {
            "overdue_since": f.get("overdue_since") or None,
            "notice_deadline": f.get("notice_deadline") or None,
            "claim_deadline": f.get("claim_deadline") or None,
            "notice_filed_at": f.get("notice_filed_at") or None,
            "missed_deadlines": deal.get("missed_deadlines", []),
        }
        if f.get("overdue_since")
        else None,
        "claim": deal.get("claim"),
        "claim_decision": deal.get("claim_decision"),
        "recoveries": deal.get("recoveries"),
        "deferrals": deal.get("deferrals"),
        # Why the deal waits and until when it is tried again (the insurer unreachable).
        "hold": {"reason": f.get("hold_reason"), "until": f.get("hold_until")}
        if deal.state == State.ON_HOLD and f.get("hold_reason")
        else None,
        "created_at": f.get("created_at"),
        "updated_at": f.get("updated_at"),
    }
    if viewer_role == "exporter":
        view["offered_banks"] = deal.offered_banks
        view["first_approval"] = None  # the bank's internal maker-checker steps
        view["pending_disbursement"] = None
        # The bank's own payment references and officers stay with the bank.
        for name in ("loan", "claim", "decision"):
            if view[name]:
                view[name] = _without_bank_internals(view[name])
        for name in ("repayments", "recoveries", "deferrals"):
            if view[name]:
                view[name] = [_without_bank_internals(item) for item in view[name]]
    elif bank_id != viewer_id:
        view["first_approval"] = None
        view["pending_disbursement"] = None
        view["bank"] = None
        view["amounts"]["eligible"] = view["amounts"]["approved"] = None
    if viewer_role == "bank" and (view["decision"] or {}).get("bank_id") != viewer_id:
        view["decision"] = None  # another bank's decision is none of this bank's business
    return view
