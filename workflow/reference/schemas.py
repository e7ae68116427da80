"""The reference file's schemas, one a section, refusing any field a record should not hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from workflow.identifiers import (
    validate_code,
    validate_identifier,
    validate_text,
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
from workflow.interest import BASES, INTEREST_MODES
from workflow.money import MAX_AMOUNT
from workflow.reference.records import (
    STATUSES,
    Bank,
    BuyerLimit,
    Declaration,
    Exporter,
    Overdue,
    Policy,
    Whitelist,
)
from workflow.tokens import (
    Principal,
    token_problem,
)
from workflow.users import USERNAME_HELP, USERNAME_RE, UserSpec, hash_problem

_ratio = validate.Range(min=Decimal("0"), max=Decimal("1"), min_inclusive=False)
_days = validate.Range(min=0, max=3650)
_positive = validate.Range(min=Decimal("0"), min_inclusive=False)
_nonneg = validate.Range(min=Decimal("0"))
_text = [validate.Length(min=1, max=128), validate_text]
_required_str = {"required": True, "validate": _text}
# Ids become parts of Redis key names: they follow the patterns of workflow.identifiers, so no
# two ids can name the same key, and each code is one the API accepts too.
_required_code = {"required": True, "validate": validate_code}
_required_id = {"required": True, "validate": validate_identifier}


def _date() -> fields.Date:
    # A relative date the loader could not resolve (years outside 1-9999) arrives here as
    # written: say what is accepted.
    return fields.Date(
        required=True,
        error_messages={
            "invalid": 'Not a valid date: write YYYY-MM-DD, or "today", "today-N" or "today+N"'
            " within the years 1-9999."
        },
    )


def _money(minimum: Decimal, *, strict_min: bool) -> fields.Decimal:
    return fields.Decimal(
        required=True,
        places=2,
        allow_nan=False,
        validate=validate.Range(min=minimum, max=MAX_AMOUNT, min_inclusive=not strict_min),
    )


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class PolicySchema(_Strict):
    policy_no = fields.String(**_required_code)
    exporter_uscc = fields.String(required=True, validate=_uscc)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    start = _date()
    end = _date()
    coverage_ratio = fields.Decimal(required=True, validate=_ratio)
    premium_paid = fields.Boolean(required=True)
    declaration_window_days = fields.Integer(required=True, strict=True, validate=_days)
    max_credit_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    covered_countries = fields.List(fields.String(validate=_country), load_default=list)
    excluded_countries = fields.List(fields.String(validate=_country), load_default=list)
    insurer = fields.String(load_default="Sinosure", validate=_text)
    grace_days = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 180))
    notice_days = fields.Integer(load_default=60, strict=True, validate=validate.Range(1, 720))
    claim_days = fields.Integer(load_default=120, strict=True, validate=validate.Range(1, 1080))
    max_deferral_days = fields.Integer(
        load_default=180, strict=True, validate=validate.Range(0, 1080)
    )

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data.get("notice_days", 60) > data.get("claim_days", 120):
            raise ValidationError("the notice is due before the claim", "notice_days")
        if data.get("grace_days", 0) >= data.get("notice_days", 60):
            # A notice follows the overdue, which comes only after the grace: it could never
            # be in time.
            raise ValidationError("the grace must end before the notice is due", "grace_days")
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("end is before start", "end")
        if data.get("covered_countries") and data.get("excluded_countries"):
            raise ValidationError(
                "give covered_countries or excluded_countries, not both", "covered_countries"
            )

    @post_load
    def _make(self, data: dict, **_: Any) -> Policy:
        data["covered_countries"] = tuple(data["covered_countries"])
        data["excluded_countries"] = tuple(data["excluded_countries"])
        return Policy(**data)


class LimitSchema(_Strict):
    limit_id = fields.String(**_required_code)
    policy_no = fields.String(**_required_code)
    buyer_code = fields.String(**_required_code)
    buyer_name = fields.String(**_required_str)
    country = fields.String(required=True, validate=_country)
    currency = fields.String(required=True, validate=_currency)
    amount = _money(Decimal(0), strict_min=True)
    max_credit_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    effective = _date()
    expiry = _date()
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data.get("effective") and data.get("expiry") and data["expiry"] < data["effective"]:
            raise ValidationError("expiry is before effective", "expiry")

    @post_load
    def _make(self, data: dict, **_: Any) -> BuyerLimit:
        return BuyerLimit(**data)


class DeclarationSchema(_Strict):
    policy_no = fields.String(**_required_code)
    buyer_code = fields.String(**_required_code)
    invoice_number = fields.String(**_required_code)
    shipment_date = _date()
    declared_on = _date()

    @post_load
    def _make(self, data: dict, **_: Any) -> Declaration:
        return Declaration(**data)


class OverdueSchema(_Strict):
    policy_no = fields.String(**_required_code)
    buyer_code = fields.String(**_required_code)
    reported_on = _date()

    @post_load
    def _make(self, data: dict, **_: Any) -> Overdue:
        return Overdue(**data)


class WhitelistSchema(_Strict):
    programme = fields.String(**_required_id)
    region = fields.String(**_required_str)
    valid_from = _date()
    valid_to = _date()
    members = fields.List(fields.String(validate=_uscc), required=True)

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if (
            data.get("valid_from")
            and data.get("valid_to")
            and data["valid_to"] < data["valid_from"]
        ):
            raise ValidationError("valid_to is before valid_from", "valid_to")

    @post_load
    def _make(self, data: dict, **_: Any) -> Whitelist:
        data["members"] = tuple(sorted(set(data["members"])))
        return Whitelist(**data)


class BankSchema(_Strict):
    bank_id = fields.String(**_required_id)
    name = fields.String(**_required_str)
    currencies = fields.List(
        fields.String(validate=_currency), required=True, validate=validate.Length(min=1)
    )
    min_amount = _money(Decimal(0), strict_min=False)
    max_amount = _money(Decimal(0), strict_min=True)
    max_tenor_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    advance_rate = fields.Decimal(required=True, validate=_ratio)
    annual_rate = fields.Decimal(
        required=True, validate=validate.Range(min=Decimal("0"), max=Decimal("1"))
    )
    requires_whitelist = fields.Boolean(required=True)
    decision_hours = fields.Decimal(
        required=True,
        validate=validate.Range(min=Decimal("0"), max=Decimal("720"), min_inclusive=False),
    )
    # Approvals of this amount or more need a second officer (a checker); absent = never.
    second_approval_above = fields.Decimal(
        load_default=None,
        places=2,
        allow_nan=False,
        validate=validate.Range(min=Decimal(0), max=MAX_AMOUNT, min_inclusive=False),
    )

    interest_mode = fields.String(
        load_default="at_maturity", validate=validate.OneOf(INTEREST_MODES)
    )
    day_count = fields.Dict(
        keys=fields.String(validate=_currency),
        values=fields.String(validate=validate.OneOf(sorted(BASES))),
        load_default=dict,
    )
    approval_lapse_days = fields.Integer(
        load_default=None, strict=True, validate=validate.Range(min=1, max=365)
    )
    # Offered only deals whose every invoice names its B/L and customs declaration.
    requires_trade_documents = fields.Boolean(load_default=False)

    @validates_schema
    def _range(self, data: dict, **_: Any) -> None:
        lo, hi = data.get("min_amount"), data.get("max_amount")
        if lo is not None and hi is not None and hi < lo:
            raise ValidationError("max_amount is below min_amount", "max_amount")

    @post_load
    def _make(self, data: dict, **_: Any) -> Bank:
        data["currencies"] = tuple(data["currencies"])
        return Bank(**data)


class ExporterSchema(_Strict):
    uscc = fields.String(required=True, validate=_uscc)
    name = fields.String(**_required_str)
    region = fields.String(**_required_str)

    @post_load
    def _make(self, data: dict, **_: Any) -> Exporter:
        return Exporter(**data)


def _token(value: str) -> None:
    problem = token_problem(value)
    if problem:
        raise ValidationError(problem)


class TokenSchema(_Strict):
    token = fields.String(required=True, validate=_token)
    exporter_uscc = fields.String(validate=_uscc)
    bank_id = fields.String(validate=validate_identifier)

    @validates_schema
    def _one_subject(self, data: dict, **_: Any) -> None:
        if ("exporter_uscc" in data) == ("bank_id" in data):
            raise ValidationError("give exactly one of exporter_uscc or bank_id", "token")

    @post_load
    def _make(self, data: dict, **_: Any) -> tuple[str, Principal]:
        if "bank_id" in data:
            return data["token"], Principal("bank", data["bank_id"])
        return data["token"], Principal("exporter", data["exporter_uscc"])


def _username(value: str) -> None:
    if not USERNAME_RE.fullmatch(value):
        raise ValidationError(USERNAME_HELP)


def _password_hash(value: str) -> None:
    problem = hash_problem(value)
    if problem:
        raise ValidationError(problem)


def _no_plain_password(_: Any) -> None:
    raise ValidationError(
        "a plain password is refused in a file; give password_hash (make one with"
        " `xinbao user hash`)"
    )


class UserSchema(_Strict):
    username = fields.String(required=True, validate=_username)
    bank_id = fields.String(validate=validate_identifier)
    exporter_uscc = fields.String(validate=_uscc)
    checker = fields.Boolean(load_default=False)
    password_hash = fields.String(required=True, validate=_password_hash)
    # Named only to refuse it with a clear message (an unknown field would say less).
    password = fields.Raw(validate=_no_plain_password)

    @validates_schema
    def _one_subject(self, data: dict, **_: Any) -> None:
        if ("exporter_uscc" in data) == ("bank_id" in data):
            raise ValidationError("give exactly one of bank_id or exporter_uscc", "username")
        if data.get("checker") and "bank_id" not in data:
            raise ValidationError("only an officer of a bank can be a checker", "checker")

    @post_load
    def _make(self, data: dict, **_: Any) -> UserSpec:
        return UserSpec(
            username=data["username"],
            bank_id=data.get("bank_id"),
            exporter_uscc=data.get("exporter_uscc"),
            checker=data["checker"],
            password_hash=data["password_hash"],
        )
