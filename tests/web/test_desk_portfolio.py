"""The officer's portfolio page and CSV: the bank's own figures only, from its counters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from tests.conftest import DEMO_TODAY
from tests.web.conftest import auth
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401
from tests.web.test_servicing_api import approved, post  # noqa: F401


def test_portfolio_page_and_csv_show_the_banks_figures(app, api, approved, users_clock):  # noqa: F811
    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    client = signed_in(app, "boc-officer")
    html = page(client, "/bank/portfolio")
    assert "USD 80,000.00" in html and "DE-0001" in html and "<svg" in html
    assert "first-time borrowers" in html
    rv = client.get("/bank/portfolio.csv")
    assert rv.status_code == 200 and rv.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(rv.get_data(as_text=True))))
    assert ["outstanding", "USD", "", "80000.00"] in rows
    assert ["outstanding_by_buyer", "USD", "DE-0001", "80000.00"] in rows
    assert ["borrowers", "", "", "1"] in rows
    # Another bank sees none of it; an exporter user is refused.
    other = signed_in(app, "icbc-officer")
    assert "80,000.00" not in page(other, "/bank/portfolio")
    assert "80000.00" not in other.get("/bank/portfolio.csv").get_data(as_text=True)
    assert signed_in(app, "haixin").get("/bank/portfolio").status_code == 403


def test_the_deal_page_shows_arrears_and_the_claims_outcome(app, api, approved, clock,  # noqa: F811
                                                           users_clock):  # noqa: F811
    from tests.workflow.test_servicing import DUE

    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    clock.advance(days=(DUE - DEMO_TODAY).days + 10)
    app.extensions["xinbao"].sweep_arrears()
    client = signed_in(app, "boc-officer")
    html = page(client, f"/bank/deals/{approved}")
    assert "Arrears and the insurer" in html and "(1-30)" in html
    assert post(api, approved, "notice").status_code == 200
    assert post(api, approved, "claim", loss_amount="100000.00",
                documents=["invoice"]).status_code == 202
    html = page(signed_in(app, "boc-officer"), f"/bank/deals/{approved}")
    assert "Indemnity paid: USD 90,000.00" in html


def test_overdue_by_bucket_deferred_and_claims_on_the_page_csv_and_api(  # noqa: F811
    app, api, approved, clock, users_clock  # noqa: F811
):
    from tests.workflow.test_servicing import DUE

    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    clock.advance(days=(DUE - DEMO_TODAY).days + 35)  # 35 days past due: bucket 31-60
    app.extensions["xinbao"].sweep_arrears()
    got = api.client.get("/api/v1/portfolio", headers=auth("boc")).get_json()
    assert got["arrears"]["USD"]["31-60"] == {"amount": "80000.00", "advances": 1}
    assert got["arrears"]["USD"]["1-30"] == {"amount": "0.00", "advances": 0}
    client = signed_in(app, "boc-officer")
    html = page(client, "/bank/portfolio")
    assert "Overdue by days past due" in html and "31-60" in html
    rows = list(csv.reader(io.StringIO(client.get("/bank/portfolio.csv").get_data(as_text=True))))
    assert ["overdue_days", "USD", "31-60", "80000.00"] in rows
    assert ["overdue_advances", "USD", "31-60", "1"] in rows
    new_due = (DUE + timedelta(days=70)).isoformat()
    rv = post(api, approved, "deferrals", new_due_date=new_due, reference="D-1")
    assert rv.status_code == 200, rv.get_json()
    got = api.client.get("/api/v1/portfolio", headers=auth("boc")).get_json()
    assert got["deferred"] == {"USD": "80000.00"} and got["deferred_deals"] == 1
    assert got["overdue"] == {} and got["arrears"] == {}
    rows = list(csv.reader(io.StringIO(client.get("/bank/portfolio.csv").get_data(as_text=True))))
    assert ["deferred_advances", "", "", "1"] in rows and ["claims_pending", "", "", "0"] in rows


def test_a_chart_shows_the_largest_and_one_bar_for_the_others():
    from decimal import Decimal

    from web.desk.portfolio import TOP_BARS, _bars

    amounts = {f"B-{n:03}": Decimal(n) for n in range(1, TOP_BARS + 6)}
    rows = _bars(amounts, "Others")
    assert len(rows) == TOP_BARS + 1
    assert rows[0]["label"] == f"B-{TOP_BARS + 5:03}"
    assert rows[-1]["label"] == "Others (5)" and rows[-1]["amount"] == sum(range(1, 6))
    assert len(_bars(dict(list(amounts.items())[: TOP_BARS + 1]), "Others")) == TOP_BARS + 1
