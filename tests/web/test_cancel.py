"""Cancelling an approval: a repeat is harmless, bad text is refused, the release is shown."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DE_EXPOSURE, make_application
from tests.web.conftest import auth
from workflow.pipeline import Decision
from workflow.states import State

LIMIT = DE_EXPOSURE  # limit LIM-HX-DE0001


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def approved(wf):
    deal = wf.verify(wf.submit(make_application()).deal.id)
    assert deal.state == State.PENDING_BANK and deal.bank_id == "BOC-NB"
    deal = wf.decide(deal.id, "BOC-NB", Decision(approve=True, officer="wang"))
    assert deal.state == State.APPROVED
    return deal


def test_a_double_clicked_cancel_is_idempotent_not_a_conflict(wf, monkeypatch):
    """Two cancels by the same bank that both read the approved deal (a double click, a client
    retry racing the first request): the second answers with the cancelled deal, not a 409."""
    deal = approved(wf)
    stale = wf.store.get(deal.id)
    first = wf.cancel_approval(deal.id, "BOC-NB", "li", "terms changed")
    assert first.state == State.CANCELLED
    real_get = wf.store.get

    def stale_once(deal_id):
        monkeypatch.setattr(wf.store, "get", real_get)
        return stale  # read before the first cancel landed

    monkeypatch.setattr(wf.store, "get", stale_once)
    again = wf.cancel_approval(deal.id, "BOC-NB", "li", "terms changed")
    assert again.state == State.CANCELLED


BAD_TEXT = [
    ("reason", "\ud800"),            # a lone surrogate: not Unicode, breaks strict JSON readers
    ("reason", "paid \udfff twice"),
    ("officer", "\udbff"),
    ("reason", "a\x85b"),            # C1 control characters (NEL, CSI)
    ("reason", "\x9b31m red"),
    ("officer", "li\x85"),
]


@pytest.mark.parametrize(("field", "value"), BAD_TEXT)
def test_cancel_refuses_text_that_is_not_clean_unicode(api, fake_redis, field, value):
    """A lone surrogate or a C1 control character would be written forever into the event log,
    from where strict JSON readers could not take it: 422 naming the field."""
    deal = api.create()
    assert api.decide(deal["id"], "boc", decision="approve").status_code == 200
    body = {"reason": "terms changed", field: value}
    rv = api.client.post(f"/api/v1/deals/{deal['id']}/cancel",
                         data=json.dumps(body), content_type="application/json",
                         headers=auth("boc"))
    assert rv.status_code == 422, (rv.status_code, rv.get_data(as_text=True)[:200])
    assert field in rv.get_json()["error"]["fields"]
    assert api.get(deal["id"]).get_json()["state"] == "approved"


def test_a_cancelled_deal_does_not_claim_a_reservation_it_released(api, fake_redis):
    """The store releases the reservation; the deal must not go on showing it."""
    from workflow.store import DealStore

    deal = api.create()
    api.decide(deal["id"], "boc", decision="approve")
    cancelled = api.cancel(deal["id"], "boc", reason="terms changed").get_json()
    assert cancelled["state"] == "cancelled"
    assert DealStore(fake_redis).reserved_cents(LIMIT) == 0
    for seen in (cancelled, api.get(deal["id"]).get_json(), api.get(deal["id"], "boc").get_json()):
        assert seen["amounts"]["reserved_on_limit"] in (None, "0.00"), seen["amounts"]


def test_an_overlong_deal_id_is_a_404_that_does_not_echo_it(api):
    long_id = "x" * 5000
    for rv in (api.cancel(long_id, "boc", reason="x"),
               api.decide(long_id, "boc", decision="decline", reason="x"),
               api.withdraw(long_id), api.get(long_id)):
        assert rv.status_code == 404
        assert long_id not in rv.get_data(as_text=True)
