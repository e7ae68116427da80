"""The exporter's application, POST /api/v1/deals: the buyer, the invoices and the amount asked."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from web.schemas.values import Money, TrimmedString
from workflow.deal import Application, Buyer, Invoice
from workflow.identifiers import (
    validate_bill_of_lading,
    validate_customs_declaration,
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

MAX_INVOICES = 50


class BuyerSchema(Schema):
    code = fields.String(required=True, validate=_code)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate_text])
    country = fields.String(required=True, validate=_country)


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
