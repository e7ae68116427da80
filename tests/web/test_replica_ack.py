"""XINBAO_REQUIRE_REPLICA_ACK on a real Redis with no replica: an API write is refused with 503
REPLICA_ACK_TIMEOUT (the deal is written, a retry with the same key returns it); off, 202."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import DEMO_NOW, Clock
from tests.web.conftest import EAGER, Api, deal_body, error_of
from web import create_app
from workflow.reference import store_reference

pytestmark = pytest.mark.redis


def api_for(real_redis, demo_reference, settings, guard: bool) -> Api:
    store_reference(real_redis, demo_reference)
    settings = dataclasses.replace(settings, require_replica_ack=guard, replica_ack_timeout_ms=50)
    app = create_app(settings, redis_client=real_redis, celery=dict(EAGER))
    app.config["TESTING"] = True
    clock = Clock(DEMO_NOW)
    app.extensions["xinbao"].clock = clock
    return Api(app.test_client(), clock)


def test_without_a_replica_the_guard_answers_503_and_the_retry_returns_the_deal(
    real_redis, demo_reference, settings
):
    api = api_for(real_redis, demo_reference, settings, guard=True)
    refused = api.submit(deal_body("INV-HX-1001"), key="k-1")
    error = error_of(refused, 503, "REPLICA_ACK_TIMEOUT")
    assert "Idempotency-Key" in error["message"]
    assert refused.headers["Retry-After"]
    again = api.submit(deal_body("INV-HX-1001"), key="k-1")
    assert again.status_code == 503  # still no replica: still not confirmed
    listed = api.list()
    assert len(listed.get_json()["items"]) == 1  # written once, on the primary


def test_off_by_default(real_redis, demo_reference, settings):
    api = api_for(real_redis, demo_reference, settings, guard=False)
    assert api.submit(deal_body("INV-HX-1001"), key="k-1").status_code == 202
