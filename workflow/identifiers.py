"""Validators for the identifiers Xinbao accepts: USCC, ISO 4217 currency, ISO 3166 country."""

from __future__ import annotations

from functools import lru_cache

import pycountry
from stdnum.cn import uscc as _uscc
from stdnum.exceptions import ValidationError


def uscc_problem(value: str) -> str | None:
    """Why ``value`` is not a valid unified social credit code (GB 32100-2015), or None."""
    try:
        _uscc.validate(value)
    except ValidationError as exc:
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
