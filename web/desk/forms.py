"""The officer's decision forms (Flask-WTF: each carries its CSRF token). The values follow
the JSON API's rules: amounts and rates go through the same marshmallow fields."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation

from web.schemas import Money, Rate
from workflow.identifiers import validate_text

REASON_MAX = 500


def _words(exc: ValidationError) -> str:
    messages = exc.messages
    if isinstance(messages, list):
        return "; ".join(str(m) for m in messages)
    return str(messages)


def _through(field_type: type) -> Any:
    """A WTForms validator that loads the value with the API's own field type and leaves the
    parsed value (a Decimal) on ``field.parsed``."""

    def check(form: FlaskForm, field: Any) -> None:
        try:
            field.parsed = field_type().deserialize(field.data)
        except ValidationError as exc:
            raise StopValidation(_words(exc)) from exc

    return check


def _text(form: FlaskForm, field: Any) -> None:
    try:
        validate_text(field.data)
    except ValidationError as exc:
        raise StopValidation(_words(exc)) from exc


class ApproveForm(FlaskForm):
    amount = StringField(
        "Amount to finance",
        validators=[DataRequired(message="Enter the amount."), _through(Money)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    annual_rate = StringField(
        "Annual rate (a fraction, e.g. 0.0450 for 4.50 %)",
        validators=[DataRequired(message="Enter the annual rate."), _through(Rate)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    approve = SubmitField("Approve")


class DeclineForm(FlaskForm):
    reason = TextAreaField(
        "Reason for declining",
        validators=[
            DataRequired(message="A decline needs a reason."),
            Length(max=REASON_MAX),
            _text,
        ],
    )
    decline = SubmitField("Decline")
