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
