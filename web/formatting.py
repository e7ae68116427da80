"""How pages show money, rates and times (Babel, in the page's language): the currency's code
with thousands separators and its own decimals, Asia/Shanghai wall time."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel.core import UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import UnknownCurrencyError, format_currency, format_decimal, format_percent
from babel.numbers import get_currency_precision as currency_precision
from flask import Flask
from flask_babel import get_locale, gettext

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The ISO code before the amount ("USD 1,234,567.50"): a bank deals in many currencies, and
# "$" or "¥" alone are ambiguous (US, HK, Singapore dollars; yuan and yen).
MONEY_PATTERN = "¤¤ #,##0.00"
# Dates and times as a bank's documents write them, alike in both languages.
DATETIME_PATTERN = "yyyy-MM-dd HH:mm"
# Outside a request (a CLI, a unit test): Babel's English.
FALLBACK_LOCALE = "en"


def _locale() -> Any:
    return get_locale() or FALLBACK_LOCALE


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def money(value: Any, currency: str = "") -> str:
    """'80000' and 'USD' as 'USD 80,000.00' (JPY with no decimals); '' for no amount. The
    Decimal stays exact: rounded half up to the currency's minor unit, never via a float."""
    amount = _decimal(value)
    if amount is None:
        return ""
    locale = _locale()
    try:
        places = currency_precision(currency) if currency else 2
        quantized = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if not currency:
            return format_decimal(quantized, "#,##0.00", locale=locale)
        return format_currency(quantized, currency, MONEY_PATTERN, locale=locale)
    except (UnknownCurrencyError, UnknownLocaleError, InvalidOperation):
        return f"{currency} {amount}".strip()


def percent(value: Any) -> str:
    """A ratio as a percentage: '0.90' as '90%', '0.0420' as '4.20%'."""
    ratio = _decimal(value)
    if ratio is None:
        return ""
    # Every digit a rate was given with (up to 6 decimals of the fraction): a checker must
    # see the exact rate they confirm, 4.125% and not 4.12%.
    pattern = "#,##0%" if (ratio * 100) % 1 == 0 else "#,##0.00##%"
    return format_percent(ratio, pattern, locale=_locale())


def to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def shanghai(value: Any) -> str:
    """A stored UTC time as Asia/Shanghai wall time, '2026-11-24 17:00'."""
    moment = to_datetime(value)
    if moment is None or moment.tzinfo is None:
        return ""
    return format_datetime(moment, DATETIME_PATTERN, tzinfo=SHANGHAI, locale=_locale())


def time_left(deadline: Any, now: datetime) -> str:
    """'5 h 12 min', '1 d 3 h', or 'passed' once the deadline is behind (in the page's
    language)."""
    moment = to_datetime(deadline)
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return gettext("passed")
    minutes = max(seconds // 60, 1)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return gettext("%(days)s d %(hours)s h", days=days, hours=hours)
    if hours:
        return gettext("%(hours)s h %(minutes)s min", hours=hours, minutes=f"{minutes:02d}")
    return gettext("%(minutes)s min", minutes=minutes)


def init_app(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(shanghai, "shanghai")
