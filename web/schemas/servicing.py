"""Servicing an approved deal: the disbursement, its check, repayments and deferrals."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from web.schemas.values import Money
from workflow.identifiers import validate_paragraphs, validate_text


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
