"""A deal's decisions: the bank's approval or decline, a withdrawal and a cancellation."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from web.schemas.values import Money, Rate
from workflow.identifiers import validate_paragraphs, validate_text


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
