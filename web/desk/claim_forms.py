"""The officer's forms after an overdue: the notice of possible loss, the claim, recoveries."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import SelectMultipleField, StringField, SubmitField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, StopValidation

from web.desk.forms import _amount_field, _reference_field, _strip
from workflow.identifiers import validate_text

# The documents a claim usually goes with, by the code stored on the claim. The insurer's
# claim form asks for these; anything else goes in "other" as the officer writes it.
CLAIM_DOCUMENTS: dict[str, Any] = {
    "policy": _l("Insurance policy"),
    "commercial_invoice": _l("Commercial invoice"),
    "bill_of_lading": _l("Bill of lading"),
    "customs_declaration": _l("Customs declaration"),
    "buyer_correspondence": _l("Correspondence with the buyer"),
    "statement_of_account": _l("Statement of account"),
}
# The API's rule for one document's name (web.schemas.ClaimSchema).
DOCUMENT_MAX = 200


def document_words(code: str) -> str:
    """A claim document in words: a usual one by its code, any other as written."""
    words = CLAIM_DOCUMENTS.get(code)
    return str(words) if words is not None else code


class NoticeForm(FlaskForm):
    """The notice of possible loss: one button, its consequence said beside it."""

    notice = SubmitField(_l("Send the notice of possible loss"))


def _plain_text(form: FlaskForm, field: Any) -> None:
    if not field.data:
        return
    try:
        validate_text(field.data)
    except ValidationError as exc:
        raise StopValidation(
            str(_l("Write the other documents as plain text, with no control characters."))
        ) from exc


class ClaimForm(FlaskForm):
    """The claim: the loss and the documents sent with it (at least one)."""

    loss_amount = _amount_field(_l("Loss claimed"))
    documents = SelectMultipleField(
        _l("Documents sent with the claim"),
        choices=[SelectChoice(code, words) for code, words in CLAIM_DOCUMENTS.items()],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
        validate_choice=False,  # checked below, with the rule in the page's language
    )
    other = StringField(
        _l("Other documents (optional)"),
        filters=[_strip],
        validators=[Length(max=DOCUMENT_MAX), _plain_text],
        render_kw={"autocomplete": "off", "maxlength": DOCUMENT_MAX},
    )
    claim = SubmitField(_l("File the claim"))

    def validate_documents(self, field: Any) -> None:
        if any(code not in CLAIM_DOCUMENTS for code in field.data or []):
            raise StopValidation(str(_l("Tick documents from the list, or write them in “other”.")))
        if not field.data and not (self.other.data or "").strip():
            raise StopValidation(str(_l("Tick the documents sent with the claim.")))

    def document_list(self) -> list[str]:
        """The documents as the claim stores them: the codes ticked, then the other text."""
        other = (self.other.data or "").strip()
        return [*self.documents.data, *([other] if other else [])]


class RecoveryForm(FlaskForm):
    """Money recovered from the buyer after the indemnity."""

    amount = _amount_field(_l("Amount recovered"))
    reference = _reference_field()
    recover = SubmitField(_l("Record the recovery"))
