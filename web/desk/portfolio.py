"""The officer's portfolio page and its CSV export, read from the counters the transitions
keep (workflow.portfolio), never by scanning deals."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from flask import Response, render_template
from flask_babel import gettext as _
from flask_login import current_user

from web.api import flow
from web.auth.session import role_required
from web.desk import desk
from web.words import bank_state_words
from workflow import keys
from workflow.portfolio import figures
from workflow.states import State
from workflow.users import OFFICER

# States a bank's deals are counted in on the page, in the order of their life.
COUNTED = (
    State.PENDING_BANK,
    State.APPROVED,
    State.DISBURSED,
    State.OVERDUE,
    State.CLAIM_FILED,
    State.REPAID,
    State.INDEMNIFIED,
    State.CLAIM_REJECTED,
    State.CANCELLED,
)
BAR_WIDTH = 320  # the longest bar of a chart, in SVG units
# A chart shows the largest this many and one bar for the rest (the CSV has every one): a
# page must not grow with a bank's thousand buyers.
TOP_BARS = 15


def _bars(amounts: dict[str, Decimal], others: str) -> list[dict[str, Any]]:
    """Rows of a horizontal bar chart, largest first, widths relative to the largest."""
    rows = sorted(amounts.items(), key=lambda item: (-item[1], item[0]))
    if len(rows) > TOP_BARS + 1:
        rest = rows[TOP_BARS:]
        rest_total = sum((amount for _label, amount in rest), Decimal(0))
        rows = [*rows[:TOP_BARS], (f"{others} ({len(rest)})", rest_total)]
    top = max((amount for _label, amount in rows), default=Decimal(0))
    return [
        {"label": label, "amount": amount, "width": int(BAR_WIDTH * amount / top) if top else 0}
        for label, amount in rows
    ]


def _counts(bank_id: str) -> list[tuple[str, int]]:
    pipe = flow().store.redis.pipeline(transaction=False)
    for state in COUNTED:
        pipe.zcard(keys.bank_state(bank_id, state))
    return [(bank_state_words(s), n) for s, n in zip(COUNTED, pipe.execute(), strict=True)]


@desk.get("/portfolio")
@role_required(OFFICER)
def portfolio() -> Any:
    """Outstanding by currency, buyer and country, overdue and the share at risk, claims,
    borrowers — with server-rendered SVG bars (no script, no internet)."""
    bank_id = current_user.user.bank_id
    workflow = flow()
    got = figures(workflow.store.redis, bank_id, today=workflow.today())
    others = _("Others")
    currencies = []
    for currency, outstanding in sorted(got["outstanding"].items()):
        overdue = got["overdue"].get(currency, Decimal(0))
        currencies.append(
            {
                "currency": currency,
                "outstanding": outstanding,
                "overdue": overdue,
                "at_risk": (overdue / outstanding) if outstanding else Decimal(0),
                "buyers": _bars(got["by_buyer"].get(currency, {}), others),
                "countries": _bars(got["by_country"].get(currency, {}), others),
                "arrears": got["arrears"].get(currency),
                "deferred": got["deferred"].get(currency),
                "claimed": got["claimed"].get(currency),
            }
        )
    return render_template(
        "desk/portfolio.html",
        bank=flow().reference.bank(bank_id),
        bank_id=bank_id,
        figures=got,
        currencies=currencies,
        counts=_counts(bank_id),
        bar_width=BAR_WIDTH,
    )


@desk.get("/portfolio.csv")
@role_required(OFFICER)
def portfolio_csv() -> Response:
    """The same figures as rows: figure, currency, breakdown, value."""
    bank_id = current_user.user.bank_id
    workflow = flow()
    got = figures(workflow.store.redis, bank_id, today=workflow.today())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "currency", "breakdown", "value"])
    for figure in ("outstanding", "overdue", "deferred", "claimed", "indemnity"):
        for currency, amount in sorted(got[figure].items()):
            writer.writerow([figure, currency, "", str(amount)])
    for currency, buckets in sorted(got["arrears"].items()):
        for bucket, row in buckets.items():
            writer.writerow(["overdue_days", currency, bucket, str(row["amount"])])
            writer.writerow(["overdue_advances", currency, bucket, row["advances"]])
    for figure, group in (
        ("outstanding_by_buyer", "by_buyer"),
        ("outstanding_by_country", "by_country"),
    ):
        for currency, parts in sorted(got[group].items()):
            for part, amount in sorted(parts.items()):
                writer.writerow([figure, currency, part, str(amount)])
    writer.writerow(["borrowers", "", "", got["borrowers"]])
    writer.writerow(["first_time_borrowers", "", "", got["first_time_borrowers"]])
    writer.writerow(["deferred_advances", "", "", got["deferred_deals"]])
    for outcome, n in got["claims"].items():
        writer.writerow([f"claims_{outcome}", "", "", n])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="portfolio-{bank_id}.csv"'},
    )
