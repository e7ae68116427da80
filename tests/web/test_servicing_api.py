"""Disbursement and repayments through the JSON API: the bank's calls, the views, refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import DEMO_TODAY
from tests.web.conftest import error_of


@pytest.fixture
def approved(api) -> str:
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="approve", amount="80000.00")
    assert rv.status_code == 200 and rv.get_json()["state"] == "approved"
    return deal["id"]


def post(api, deal_id: str, what: str, who: str = "boc", **body):
    from tests.web.conftest import auth

    return api.client.post(f"/api/v1/deals/{deal_id}/{what}", json=body, headers=auth(who))


def test_disburse_and_repay_in_full(api, approved, clock):
    rv = post(api, approved, "disbursement", amount="80000.00",
              value_date=DEMO_TODAY.isoformat(), reference="BOC-2026-001", officer="li")
    assert rv.status_code == 200, rv.get_json()
    deal = rv.get_json()
    assert deal["state"] == "disbursed"
    loan = deal["loan"]
    assert loan["interest_mode"] == "upfront" and loan["basis"] == "ACT/360"
    assert loan["outstanding"] == "80000.00"
    # The exporter sees the loan and its schedule too.
    mine = api.get(approved).get_json()
    assert mine["loan"]["due_date"] == loan["due_date"] and mine["repayments"] == []
    clock.advance(days=20)
    day = (DEMO_TODAY + timedelta(days=20)).isoformat()
    rv = post(api, approved, "repayments", amount="30000.00", value_date=day, reference="R-1")
    assert rv.status_code == 200 and rv.get_json()["loan"]["outstanding"] == "50000.00"
    rv = post(api, approved, "repayments", amount="50000.00", value_date=day, reference="R-2")
    assert rv.status_code == 200 and rv.get_json()["state"] == "repaid"
    # A retried request is the same repayment, not a second one.
    rv = post(api, approved, "repayments", amount="50000.00", value_date=day, reference="R-2")
    assert rv.status_code == 200 and len(rv.get_json()["repayments"]) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "80000.01"}, "amount"),
        ({"amount": 80000}, "amount"),  # a number, not a string: refused by the schema
        ({"value_date": "2026-02-30"}, "value_date"),
        ({"value_date": (DEMO_TODAY + timedelta(days=1)).isoformat()}, "value_date"),
        ({"reference": ""}, "reference"),
        ({"reference": "a\x00b"}, "reference"),
    ],
)
def test_disbursement_refusals_name_the_field(api, approved, body, field):
    payload = {"amount": "80000.00", "value_date": DEMO_TODAY.isoformat(), "reference": "B-1"}
    payload.update(body)
    error = error_of(post(api, approved, "disbursement", **payload), 422)
    assert field in error["fields"], error
    assert api.get(approved, "boc").get_json()["state"] == "approved"


def test_who_may_disburse_and_repay(api, approved):
    body = {"amount": "80000.00", "value_date": DEMO_TODAY.isoformat(), "reference": "B-1"}
    assert post(api, approved, "disbursement", "icbc", **body).status_code in (404, 409)
    assert post(api, approved, "disbursement", "haixin", **body).status_code == 403
    error_of(post(api, approved, "repayments", **body), 409)  # not disbursed yet
    assert post(api, approved, "disbursement", **body).status_code == 200
    error_of(post(api, approved, "disbursement", **{**body, "reference": "B-2"}), 409)


def test_overdue_notice_claim_and_recovery_through_the_api(api, approved, clock):
    from tests.workflow.test_servicing import DUE

    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    clock.advance(days=(DUE - DEMO_TODAY).days + 10)
    flow = api.client.application.extensions["xinbao"]
    assert flow.sweep_arrears() == [approved]
    deal = api.get(approved, "boc").get_json()
    assert deal["state"] == "overdue" and deal["arrears"]["notice_deadline"]
    error_of(post(api, approved, "claim", loss_amount="1000.00", documents=["inv"]), 409)
    assert post(api, approved, "notice").status_code == 200
    error_of(post(api, approved, "claim", loss_amount="1000.00", documents=[]), 422)
    rv = post(api, approved, "claim", loss_amount="100000.00", documents=["invoice", "B/L"])
    assert rv.status_code == 202, rv.get_json()
    # The local insurer decides at once (the task runs eagerly in these tests).
    deal = api.get(approved, "boc").get_json()
    assert deal["state"] == "indemnified" and deal["claim_decision"]["indemnity"] == "90000.00"
    rv = post(api, approved, "recoveries", amount="10000.00", reference="REC-1")
    assert rv.status_code == 200 and rv.get_json()["recoveries"][0]["to_insurer"] == "9000.00"
    # The exporter reads the outcome too.
    assert api.get(approved).get_json()["state"] == "indemnified"


def test_the_portfolio_in_the_api(api, approved):
    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    rv = api.client.get("/api/v1/portfolio", headers=_auth("boc"))
    assert rv.status_code == 200
    got = rv.get_json()
    assert got["outstanding"] == {"USD": "80000.00"}
    assert got["by_buyer"] == {"USD": {"DE-0001": "80000.00"}}
    assert got["borrowers"] == 1 and got["first_time_borrowers"] == 1
    other = api.client.get("/api/v1/portfolio", headers=_auth("icbc")).get_json()
    assert other["outstanding"] == {} and other["borrowers"] == 0
    assert api.client.get("/api/v1/portfolio", headers=_auth("haixin")).status_code == 403


def _auth(who):
    from tests.web.conftest import auth

    return auth(who)
