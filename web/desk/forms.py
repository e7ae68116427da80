"""The officer's decision forms (Flask-WTF: each carries its CSRF token). The values follow
the JSON API's rules: amounts and rates go through the same marshmallow fields."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation

from web.schemas import Money, Rate
from workflow.identifiers import CODE_RE, validate_paragraphs

REASON_MAX = 500


def _through(field_type: type, message: Any) -> Any:
    """A WTForms validator that loads the value with the API's own field type and leaves the
    parsed value (a Decimal) on ``field.parsed``. A refusal shows ``message``: the rule in
    the page's language (the API's own message is English, for programs)."""

    def check(form: FlaskForm, field: Any) -> None:
        try:
            field.parsed = field_type().deserialize(field.data)
        except ValidationError as exc:
            raise StopValidation(str(message)) from exc

    return check


def _lines(value: str | None) -> str | None:
    """Browsers send a textarea's line breaks as CRLF; the reason keeps plain "\n"."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


def _text(form: FlaskForm, field: Any) -> None:
    try:
        validate_paragraphs(field.data)
    except ValidationError as exc:
        raise StopValidation(
            _l("Write the reason as plain text: not blank, with no control characters.")
        ) from exc


AMOUNT_RULE = _l(
    "Enter an amount greater than 0 in digits, with at most 2 decimals and no separators"
    " (e.g. 80000.00)."
)
RATE_RULE = _l("Enter the rate as a fraction from 0 to 1 with at most 6 decimals (e.g. 0.0450).")


class ApproveForm(FlaskForm):
    amount = StringField(
        _l("Amount to finance"),
        validators=[DataRequired(message=_l("Enter the amount.")), _through(Money, AMOUNT_RULE)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    annual_rate = StringField(
        _l("Annual rate (a fraction, e.g. 0.0450 for 4.50 %)"),
        validators=[DataRequired(message=_l("Enter the annual rate.")), _through(Rate, RATE_RULE)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    # The page's form expects no first approval: one recorded meanwhile makes it stale.
    first_ref = HiddenField(default="")
    approve = SubmitField(_l("Approve"))


class ConfirmForm(FlaskForm):
    """A checker's second approval of the first approval shown on the page."""

    first_ref = HiddenField()
    confirm = SubmitField(_l("Confirm the approval"))


def _reason(label: Any, missing: Any) -> TextAreaField:
    """A required free-text reason of several lines, at most REASON_MAX characters."""
    return TextAreaField(
        label,
        filters=[_lines],
        validators=[DataRequired(message=missing), Length(max=REASON_MAX), _text],
    )


class SendBackForm(FlaskForm):
    """A checker sends the first approval back; its maker recalls it."""

    first_ref = HiddenField()
    reason = _reason(_l("Why it goes back"), _l("Say why the approval goes back."))
    send_back = SubmitField(_l("Send the approval back"))


class DeclineForm(FlaskForm):
    reason = _reason(_l("Reason for declining"), _l("A decline needs a reason."))
    decline = SubmitField(_l("Decline"))


ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
DATE_RULE = _l("Enter the date as YYYY-MM-DD (e.g. 2026-11-24).")
REFERENCE_RULE = _l(
    "Enter your bank's reference: 1 to 64 letters, digits, spaces or _ . / # -, starting with"
    " a letter or digit."
)


def _iso_date(form: FlaskForm, field: Any) -> None:
    """A calendar date written YYYY-MM-DD (what a date input sends), left on ``field.parsed``."""
    try:
        if not ISO_DATE_RE.match(field.data or ""):
            raise ValueError(field.data)
        field.parsed = date.fromisoformat(field.data)
    except ValueError as exc:
        raise StopValidation(str(DATE_RULE)) from exc


def _reference(form: FlaskForm, field: Any) -> None:
    if not CODE_RE.match(field.data or ""):
        raise StopValidation(str(REFERENCE_RULE))


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _amount_field(label: Any) -> StringField:
    return StringField(
        label,
        filters=[_strip],
        validators=[DataRequired(message=_l("Enter the amount.")), _through(Money, AMOUNT_RULE)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )


def _value_date_field() -> StringField:
    return StringField(
        _l("Value date"),
        filters=[_strip],
        validators=[DataRequired(message=_l("Enter the value date.")), _iso_date],
        # A date input sends YYYY-MM-DD whatever the browser shows; without one the text
        # works the same.
        render_kw={"type": "date", "autocomplete": "off"},
    )


def _reference_field() -> StringField:
    return StringField(
        _l("Your bank's payment reference"),
        filters=[_strip],
        validators=[DataRequired(message=_l("Enter your bank's reference.")), _reference],
        render_kw={"autocomplete": "off", "maxlength": 64},
    )


class DisburseForm(FlaskForm):
    """The advance the bank paid out on an approved deal."""

    amount = _amount_field(_l("Amount paid out (principal)"))
    value_date = _value_date_field()
    reference = _reference_field()
    disburse = SubmitField(_l("Record the disbursement"))


class RepayForm(FlaskForm):
    """Money the bank received on a disbursed deal."""

    amount = _amount_field(_l("Amount received"))
    value_date = _value_date_field()
    reference = _reference_field()
    repay = SubmitField(_l("Record the repayment"))


class ConfirmPayoutForm(FlaskForm):
    """A checker confirms the disbursement shown on the page (``payout_ref`` names it)."""

    payout_ref = HiddenField()
    confirm_payout = SubmitField(_l("Confirm the disbursement"))


class ReturnPayoutForm(FlaskForm):
    """A checker sends the entered disbursement back; its maker recalls it."""

    payout_ref = HiddenField()
    reason = _reason(_l("Why it goes back"), _l("Say why the disbursement goes back."))
    send_back_payout = SubmitField(_l("Send the disbursement back"))


def _note(form: FlaskForm, field: Any) -> None:
    if not field.data:
        return
    try:
        validate_paragraphs(field.data)
    except ValidationError as exc:
        raise StopValidation(
            _l("Write the note as plain text, with no control characters.")
        ) from exc


class DeferForm(FlaskForm):
    """The bank asks the insurer to let its cover follow a later due date (延期还本付息)."""

    new_due_date = StringField(
        _l("New due date"),
        filters=[_strip],
        validators=[DataRequired(message=_l("Enter the new due date.")), _iso_date],
        render_kw={"type": "date", "autocomplete": "off"},
    )
    reference = StringField(
        _l("Your bank's reference for this deferral"),
        filters=[_strip],
        validators=[DataRequired(message=_l("Enter your bank's reference.")), _reference],
        render_kw={"autocomplete": "off", "maxlength": 64},
    )
    note = TextAreaField(
        _l("Note (optional)"),
        filters=[_lines, _strip],
        validators=[Length(max=REASON_MAX), _note],
        render_kw={"rows": 2},
    )
    defer = SubmitField(_l("Ask the insurer and defer"))
