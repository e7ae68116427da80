"""Validators for the identifiers and text Xinbao accepts: USCC, ISO 4217, ISO 3166, names."""

from __future__ import annotations

from functools import lru_cache

import pycountry
from marshmallow import ValidationError
from stdnum.cn import uscc as _uscc
from stdnum.exceptions import ValidationError as StdnumError


def uscc_problem(value: str) -> str | None:
    """Why ``value`` is not a valid unified social credit code (GB 32100-2015), or None."""
    try:
        _uscc.validate(value)
    except StdnumError as exc:
        return f"not a valid unified social credit code: {exc.message}"
    if _uscc.compact(value) != value:
        return "unified social credit code must be 18 characters with no spaces"
    return None


@lru_cache(maxsize=512)
def is_currency(code: str) -> bool:
    return len(code) == 3 and code.isupper() and pycountry.currencies.get(alpha_3=code) is not None


@lru_cache(maxsize=512)
def is_country(code: str) -> bool:
    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


# marshmallow validators, shared by the reference-file schemas and the API schemas.


def validate_uscc(value: str) -> None:
    problem = uscc_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_currency(value: str) -> None:
    if not is_currency(value):
        raise ValidationError("not an ISO 4217 currency code")


def validate_country(value: str) -> None:
    if not is_country(value):
        raise ValidationError("not an ISO 3166-1 alpha-2 country code")


def validate_text(value: str) -> None:
    """Free text a person reads (names, reasons): not blank, no control characters."""
    if not value.strip():
        raise ValidationError("must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("must not contain control characters")
