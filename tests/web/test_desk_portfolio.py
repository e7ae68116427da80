"""The officer's portfolio page and CSV: the bank's own figures only, from its counters."""

from __future__ import annotations

import csv
import io

from tests.conftest import DEMO_TODAY
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
