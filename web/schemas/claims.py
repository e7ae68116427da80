"""After an overdue: the notice of possible loss, the claim and recoveries."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from web.schemas.values import Money
from workflow.identifiers import validate_text


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
