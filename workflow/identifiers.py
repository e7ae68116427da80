"""Validators for the identifiers and text Xinbao accepts: USCC, ISO 4217, ISO 3166, names."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pycountry
from marshmallow import ValidationError
from stdnum.cn import uscc as _uscc
from stdnum.exceptions import InvalidChecksum, InvalidLength
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


def uscc_fault(value: str) -> str | None:
    """What is wrong with ``value`` as a USCC, as a word, or None: "length", "format" (a
    character outside the code's alphabet), "check" (the 18th character does not match the
    first 17) or "separators" (spaces or hyphens inside)."""
    try:
        _uscc.validate(value)
    except InvalidLength:
        return "length"
    except InvalidChecksum:
        return "check"
    except StdnumError:
        return "format"
    # validate() accepts what compact() would clean: spaces and hyphens inside.
    return "separators" if " " in value or "-" in value else None


def uscc_check_character(value: str) -> str:
    """The check character the first 17 characters of a well-formed USCC call for."""
    return _uscc.calc_check_digit(value[:17])


# Reference ids become parts of Redis key names ("xb:ref:limits:{policy_no}:{buyer_code}"), so
# they may not hold the ":" that separates those parts, nor the braces of a hash tag: with them,
# two different ids could name the same key ("X:members" is programme X's member set).
# A code the API accepts (policy number, buyer code, invoice number) and the loader's ids of
# the same kind use this one pattern, so every declared invoice can be submitted.
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _./#-]{0,63}\Z")
CODE_HELP = "use 1-64 letters, digits, spaces or _ . / # - (starting with a letter or digit)"
# Ids that only operators write (bank ids, whitelist programmes): no spaces either.
IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
IDENTIFIER_HELP = "use 1-64 letters, digits or _ . -"


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


def validate_code(value: str) -> None:
    """A policy number, buyer code, invoice number or limit id (see CODE_RE)."""
    if not CODE_RE.fullmatch(value):
        raise ValidationError(CODE_HELP)


# Trade documents on an invoice. A bill of lading number is the carrier's: ASCII letters and
# digits with the "-" and "/" people type between its parts. Its lock key ignores case and
# those separators, so "MAEU-123/456" and "maeu123456" are one document (see bill_of_lading_key).
BILL_OF_LADING_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{3,34}\Z")
BILL_OF_LADING_HELP = "use 4-35 letters, digits, - or / (starting with a letter or digit)"
# A customs export declaration number (报关单号) is 18 ASCII digits.
CUSTOMS_DECLARATION_RE = re.compile(r"[0-9]{18}\Z")
CUSTOMS_DECLARATION_HELP = "must be exactly 18 digits (0-9)"


def bill_of_lading_key(number: str) -> str:
    """The form a bill of lading number is compared in: upper case, without - and /."""
    return number.upper().replace("-", "").replace("/", "")


def validate_bill_of_lading(value: str) -> None:
    if not BILL_OF_LADING_RE.fullmatch(value):
        raise ValidationError(BILL_OF_LADING_HELP)


def validate_customs_declaration(value: str) -> None:
    if not CUSTOMS_DECLARATION_RE.fullmatch(value):
        raise ValidationError(CUSTOMS_DECLARATION_HELP)


def validate_identifier(value: str) -> None:
    """A bank id or whitelist programme (see IDENTIFIER_RE)."""
    if not IDENTIFIER_RE.fullmatch(value):
        raise ValidationError(IDENTIFIER_HELP)


# Categories a person's text never needs and that break storage, pages or exports later:
# controls (C0, DEL, C1), lone surrogates (not Unicode at all, Redis cannot store them),
# unassigned code points and noncharacters, and the line/paragraph separators that split a
# CSV row or a log line.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Cn", "Zl", "Zp"}
# Bidi embeddings, overrides and isolates reorder what a reader sees ("\u202e" shows an
# invoice number backwards): no name or reason needs them.
_BIDI_CONTROLS = frozenset(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def validate_paragraphs(value: str) -> None:
    """Free text of one or more lines (a decline or withdrawal reason): as ``validate_text``,
    with line breaks allowed ("\n"; a form's "\r\n" is normalised before it gets here)."""
    validate_text(value.replace("\n", " "))


def text_problem(value: str) -> str | None:
    """Why ``value`` is not clean Unicode text a person can read, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value):
        return "must not contain control characters or unassigned code points"
    if any(ch in _BIDI_CONTROLS for ch in value):
        return "must not contain bidirectional override or isolate controls"
    return None


def is_blank(value: str) -> bool:
    """Whether ``value`` shows nothing: only whitespace and invisible format characters (Cf:
    zero-width spaces, a byte-order mark, soft hyphens, joiners)."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in value)


def printable(value: object) -> str:
    """``value`` as text that is safe to echo anywhere: bad code points become escapes."""
    text = value if isinstance(value, str) else repr(value)
    if text_problem(text) is None:
        return text
    return "".join(
        f"\\u{ord(ch):04x}"
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS
        else ch
        for ch in text
    )


def validate_text(value: str) -> None:
    """Free text a person reads (names, reasons): valid Unicode, not blank, no controls.

    Format characters count as invisible: text of only those is blank. Inside visible text
    they stay allowed (a zero-width joiner is part of some scripts' spelling), except the
    bidi controls.
    """
    problem = text_problem(value)
    if problem:
        raise ValidationError(problem)
    if is_blank(value):
        raise ValidationError("must not be blank")
