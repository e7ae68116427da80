"""The business calendar of deals: Asia/Shanghai dates, due dates and the arrears they age into."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from workflow.store import epoch_seconds

# Value dates, due dates and the insurer's deadlines are counted in the banks' and exporters'
# business days: the calendar of Asia/Shanghai, not of UTC (eight hours behind).
BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
# Arrears buckets banks report, by days past the due date.
BUCKETS = ((30, "1-30"), (60, "31-60"), (90, "61-90"))


def business_date(moment: datetime) -> date:
    """The business day a moment falls on."""
    return moment.astimezone(BUSINESS_TZ).date()


def day_after(day: date) -> datetime:
    """When an advance unpaid by the end of business day ``day`` is late: the start of the
    next business day (midnight in Asia/Shanghai)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), BUSINESS_TZ)


def due_score(day: date) -> float:
    return epoch_seconds(day_after(day))


def days_past_due(due: date, today: date) -> int:
    return max((today - due).days, 0)


def arrears_bucket(days: int) -> str | None:
    """The bucket of an advance ``days`` past due (None when not past due)."""
    if days <= 0:
        return None
    return next((name for limit, name in BUCKETS if days <= limit), "90+")


__all__ = [
    "BUCKETS",
    "BUSINESS_TZ",
    "arrears_bucket",
    "business_date",
    "day_after",
    "days_past_due",
    "due_score",
]
