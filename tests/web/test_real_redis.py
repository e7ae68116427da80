"""The API end to end on a real Redis (the Lua transition script as Redis runs it)."""

from __future__ import annotations

import pytest

from tests.conftest import DE_EXPOSURE, DEMO_NOW, Clock
from tests.web.conftest import EAGER, HAIXIN, Api, deal_body, error_of
from web import create_app
from workflow.reference import store_reference
from workflow.store import DealStore

pytestmark = pytest.mark.redis


@pytest.fixture
def real_api(real_redis, demo_reference, settings):
    store_reference(real_redis, demo_reference)
    app = create_app(settings, redis_client=real_redis, celery=dict(EAGER))
    app.config["TESTING"] = True
    clock = Clock(DEMO_NOW)
    app.extensions["xinbao"].clock = clock
    return Api(app.test_client(), clock)


def test_submit_decline_approve_cancel_on_real_redis(real_api, real_redis):
    api = real_api
    first = api.submit(key="real-1")
    assert first.status_code == 202
    deal_id = first.get_json()["id"]
    assert api.submit(key="real-1").headers["Idempotent-Replayed"] == "true"
    error_of(api.submit(deal_body("INV-HX-1001")), 409, "DUPLICATE_RECEIVABLE")

    assert api.get(deal_id).get_json()["bank"]["bank_id"] == "BOC-NB"
    assert api.decide(deal_id, "boc", decision="decline", reason="no").status_code == 200
    assert api.get(deal_id, "icbc").get_json()["state"] == "pending_bank"
    error_of(api.decide(deal_id, "boc", decision="decline", reason="no"), 409, "INVALID_STATE")
    approved = api.decide(deal_id, "icbc", decision="approve", amount="70000.00")
    assert approved.get_json()["state"] == "approved"

    store = DealStore(real_redis)
    assert store.reserved_cents(DE_EXPOSURE) == 10_000_000
    error_of(api.withdraw(deal_id), 409, "ALREADY_APPROVED")
    assert store.reserved_cents(DE_EXPOSURE) == 10_000_000
    assert api.cancel(deal_id, "icbc", reason="terms changed").get_json()["state"] == "cancelled"
    assert store.reserved_cents(DE_EXPOSURE) == 0
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") is None
    events = api.events(deal_id).get_json()["events"]
    assert [e["v"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events][-3:] == [
        "offered_to_bank", "approved", "approval_cancelled"
    ]
