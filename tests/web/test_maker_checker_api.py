"""Maker-checker through the JSON API: the second approval must name a checker of the bank."""

from __future__ import annotations

import pytest

from tests.web.conftest import deal_body, error_of, invoice


@pytest.fixture
def large(api) -> str:
    """A deal of USD 320,000 pending at BOC (second approval from 150,000)."""
    deal = api.create(deal_body(invoices=[invoice(amount="400000.00")],
                                requested_amount="320000.00"))
    deal = api.get(deal["id"], "boc").get_json()
    assert deal["state"] == "pending_bank", deal
    return deal["id"]


def test_first_and_second_approval(api, large):
    first = api.decide(large, "boc", decision="approve", officer="boc-officer")
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["state"] == "pending_bank"
    assert body["first_approval"]["officer"] == "boc-officer"
    # The exporter sees no internal step.
    assert api.get(large).get_json()["first_approval"] is None
    second = api.decide(large, "boc", decision="approve", officer="boc-checker")
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["state"] == "approved"
    assert second.get_json()["decision"]["checker"] == "boc-checker"


@pytest.mark.parametrize(
    ("officer", "code"),
    [
        ("boc-officer", "SAME_OFFICER"),
        ("someone-else", "CHECKER_ROLE_REQUIRED"),   # not a user at all
        ("icbc-checker", "CHECKER_ROLE_REQUIRED"),   # a checker of another bank
    ],
)
def test_refused_second_approvals(api, large, officer, code):
    api.decide(large, "boc", decision="approve", officer="boc-officer")
    rv = api.decide(large, "boc", decision="approve", officer=officer)
    error_of(rv, 403, code)
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_a_disabled_checker_cannot_check(app, api, large):
    app.extensions["xinbao_users"].set_disabled("boc-checker", True)
    api.decide(large, "boc", decision="approve", officer="boc-officer")
    error_of(api.decide(large, "boc", decision="approve", officer="boc-checker"), 403,
             "CHECKER_ROLE_REQUIRED")


def test_send_back(api, large):
    api.decide(large, "boc", decision="approve", officer="boc-officer")
    rv = api.decide(large, "boc", decision="send_back", officer="boc-checker")
    error_of(rv, 422)  # a reason is needed
    rv = api.decide(large, "boc", decision="send_back", officer="boc-checker",
                    reason="rate below our floor")
    assert rv.status_code == 200, rv.get_json()
    assert rv.get_json()["first_approval"] is None
    error_of(api.decide(large, "boc", decision="send_back", officer="boc-checker",
                        reason="again"), 409)
