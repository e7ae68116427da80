"""How pages show money, rates and times: thousands separators with the currency, Asia/Shanghai
time. A small helper until Flask-Babel comes (then Babel's format_currency takes over)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask

SHANGHAI = ZoneInfo("Asia/Shanghai")

# ISO 4217 minor units where they are not 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any, currency: str = "") -> str:
    """'80000' and 'USD' as 'USD 80,000.00'; '' for no amount."""
    amount = _decimal(value)
    if amount is None:
        return ""
    places = _MINOR_UNITS.get(currency, 2)
    quantum = Decimal(1).scaleb(-places)
    text = f"{amount.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"
    return f"{currency} {text}".strip()


def percent(value: Any) -> str:
    """A ratio as a percentage: '0.90' as '90%', '0.0420' as '4.20%'."""
    ratio = _decimal(value)
    if ratio is None:
        return ""
    hundred = ratio * 100
    return f"{hundred:.0f}%" if hundred % 1 == 0 else f"{hundred:.2f}%"


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
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def time_left(deadline: Any, now: datetime) -> str:
    """'5 h 12 min', '1 d 3 h', or 'passed' once the deadline is behind."""
    moment = to_datetime(deadline)
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return "passed"
    minutes = max(seconds // 60, 1)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def init_app(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(shanghai, "shanghai")
