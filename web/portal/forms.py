"""The exporter's forms (Flask-WTF: each carries its CSRF token). They only collect text: the
values are checked by the JSON API's own marshmallow schemas (one set of rules), in views."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)

from web.schemas import MAX_INVOICES

# Lines on a new form, and how many "Add more lines" adds.
LINES_STEP = 3
LINE_FIELDS = (
    "number",
    "amount",
    "issue_date",
    "shipment_date",
    "due_date",
    "bill_of_lading",
    "customs_declaration",
)


# A date picker where the browser has one (it sends YYYY-MM-DD); a hint where it has not.
DATE = {"type": "date", "placeholder": "YYYY-MM-DD", "autocomplete": "off"}


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _halfwidth(value: str | None) -> str | None:
    # A Chinese input method types full-width digits and letters ("２２０１…"): the same
    # document number, folded to ASCII before the API's rules see it.
    if not isinstance(value, str):
        return value
    return "".join(
        chr(ord(ch) - 0xFEE0) if "\uff01" <= ch <= "\uff5e" else ch for ch in value
    )


class InvoiceLineForm(Form):
    """One invoice line; a line left wholly blank is ignored."""

    number = StringField(_l("Invoice number"), filters=[_strip], render_kw={"autocomplete": "off"})
    amount = StringField(
        _l("Amount"),
        filters=[_strip],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    issue_date = StringField(_l("Issued on"), filters=[_strip], render_kw=DATE)
    shipment_date = StringField(_l("Shipped on"), filters=[_strip], render_kw=DATE)
    due_date = StringField(_l("Due on"), filters=[_strip], render_kw=DATE)
    # Trade documents: optional, unless a bank requires them to be offered the deal.
    bill_of_lading = StringField(
        _l("B/L number (optional)"),
        filters=[_halfwidth, _strip],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    customs_declaration = StringField(
        _l("Customs declaration no. (报关单号, optional)"),
        filters=[_halfwidth, _strip],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )

    def is_blank(self) -> bool:
        return not any(getattr(self, name).data for name in LINE_FIELDS)


class ApplicationForm(FlaskForm):
    # Generated when the form is first shown and kept through "add" and "remove": a double
    # click or a resubmitted page lands on the deal the first submission created.
    idempotency_key = HiddenField()
    # Choices are the exporter's own policies and buyer limits, set by the view; anything
    # else posted is refused beside the field with words, not WTForms' generic message.
    policy_no = SelectField(_l("Policy"), validate_choice=False)
    buyer = SelectField(_l("Buyer"), validate_choice=False)
    currency = SelectField(_l("Currency"), validate_choice=False)
    requested_amount = StringField(
        _l("Amount requested"),
        filters=[_strip],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    invoices = FieldList(FormField(InvoiceLineForm), max_entries=MAX_INVOICES)
    add_lines = SubmitField(_l("Add more lines"))
    submit = SubmitField(_l("Submit application"))


class WithdrawForm(FlaskForm):
    reason = TextAreaField(_l("Reason (optional)"), filters=[_strip])
    withdraw = SubmitField(_l("Withdraw this application"))
