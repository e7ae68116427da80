"""Validators for the identifiers and text Xinbao accepts: USCC, ISO 4217, ISO 3166, names."""

from __future__ import annotations

import unicodedata
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


# Categories a person's text never needs and that break storage, pages or exports later:
# controls (C0, DEL, C1), lone surrogates (not Unicode at all, Redis cannot store them),
# unassigned code points and noncharacters, and the line/paragraph separators that split a
# CSV row or a log line.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Cn", "Zl", "Zp"}


def text_problem(value: str) -> str | None:
    """Why ``value`` is not clean Unicode text a person can read, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value):
        return "must not contain control characters or unassigned code points"
    return None


def printable(value: object) -> str:
    """``value`` as text that is safe to echo anywhere: bad code points become escapes."""
    text = value if isinstance(value, str) else repr(value)
    if text_problem(text) is None:
        return text
    return "".join(
        ch if unicodedata.category(ch) not in _REFUSED_CATEGORIES else f"\\u{ord(ch):04x}"
        for ch in text
    )


def validate_text(value: str) -> None:
    """Free text a person reads (names, reasons): valid Unicode, not blank, no controls."""
    problem = text_problem(value)
    if problem:
        raise ValidationError(problem)
    if not value.strip():
        raise ValidationError("must not be blank")
