"""The API's responses, for the OpenAPI document: errors, deals, pages of deals, events, feeds."""

from __future__ import annotations

from marshmallow import Schema, fields

from web.schemas.application import BuyerSchema


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
