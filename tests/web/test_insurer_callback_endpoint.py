"""POST /api/v1/insurer/callbacks: only the insurer's signed callbacks count, each once; a
claim the insurer decided is settled without waiting for the stranded sweep."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from werkzeug.serving import make_server

from tests.conftest import DEMO_NOW, DEMO_TODAY, Clock, demo_text
from tests.support import InsurerSim, free_port, wait_until
from tests.web.conftest import EAGER, Api
from tests.workflow.test_servicing import DUE
from web import create_app
from workflow import keys
from workflow.callback_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback
from workflow.reference import store_reference
from workflow.reference.file import parse_reference_json
from workflow.settings import SIM_API_KEY, load_settings

SECRET = "a-callback-secret-of-the-insurer"
URL = "/api/v1/insurer/callbacks"


def signed(payload: Any, secret: str = SECRET, at: float | None = None) -> dict[str, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(at if at is not None else time.time()))
    return {
        "data": body,
        "headers": {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign_callback(secret, stamp, body),
        },
    }


@pytest.fixture
def hooked(app, monkeypatch):
    """The app with a callback secret, and the claims its callbacks ask to settle."""
    workflow = app.extensions["xinbao"]
    workflow.settings = dataclasses.replace(workflow.settings, insurer_callback_secret=SECRET)
    settled: list[str] = []
    monkeypatch.setattr("web.insurer_callbacks.dispatch_settle_claim", settled.append)
    return app, settled


def claim_filed(app, api) -> str:
    """A BOC deal overdue, noticed and claimed, the insurer's answer not asked yet."""
    deal = api.create()
    assert api.decide(deal["id"], "boc", decision="approve", amount="80000.00").status_code == 200
    workflow = app.extensions["xinbao"]
    from workflow.servicing import Disbursement

    payout = Disbursement("li", Decimal("80000.00"), DEMO_TODAY, "P")
    workflow.disburse(deal["id"], "BOC-NB", payout)
    workflow.clock.advance(days=(DUE - DEMO_TODAY).days + 5)
    workflow.sweep_arrears()
    workflow.file_notice(deal["id"], "BOC-NB", "li")
    workflow.file_claim(deal["id"], "BOC-NB", "li", Decimal("80000.00"), ["invoice"])
    return deal["id"]


def test_a_claim_decided_is_settled_once(hooked, api):
    app, settled = hooked
    deal_id = claim_filed(app, api)
    client = app.test_client()
    payload = {"type": "claim_decided", "claimId": "CLM-1", "dealId": deal_id}
    rv = client.post(URL, **signed(payload))
    assert rv.status_code == 200 and rv.get_json() == {"accepted": True, "duplicate": False}
    assert settled == [deal_id]
    again = client.post(URL, **signed(payload))  # delivered twice: changes nothing twice
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert settled == [deal_id]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "claim_decided", "claimId": "CLM-2", "dealId": "no-such-deal"},
        {"type": "claim_decided", "claimId": "CLM-3"},
        {"type": "job_processed", "jobId": "JOB-1", "status": "processed", "result": {}},
        {"type": "something_new", "jobId": "JOB-2"},
        {"jobId": "JOB-3"},
    ],
)
def test_unknown_or_late_callbacks_are_acknowledged_and_change_nothing(hooked, payload):
    app, settled = hooked
    rv = app.test_client().post(URL, **signed(payload))
    assert rv.status_code == 200, rv.get_json()
    assert settled == []


def test_a_deal_no_longer_waiting_is_not_settled_again(hooked, api):
    app, settled = hooked
    deal = api.create()  # pending at a bank: nothing to settle
    rv = app.test_client().post(
        URL, **signed({"type": "claim_decided", "claimId": "CLM-4", "dealId": deal["id"]})
    )
    assert rv.status_code == 200 and settled == []


# Signed when the test runs, not when it is collected: a suite longer than the freshness window
# would otherwise send stale signatures.
@pytest.mark.parametrize(
    ("make_request", "status"),
    [
        (lambda: {"data": b'{"jobId": "J"}', "headers": {"Content-Type": "application/json"}}, 401),
        (lambda: signed({"jobId": "J"}, secret="another-secret"), 401),
        (lambda: signed({"jobId": "J"}, at=time.time() - 3600), 401),  # replayed an hour later
        (lambda: signed(b"not json"), 400),
        (lambda: signed(b"[1, 2]"), 400),
        (lambda: signed(b"\xff\xfe"), 400),
        (lambda: signed({"type": "claim_decided", "dealId": "x"}), 422),
        (lambda: signed({"jobId": "a\u0000b"}), 422),
        (lambda: signed({"jobId": "x" * 500}), 422),
        (lambda: signed({"jobId": 12}), 422),
    ],
)
def test_forged_stale_or_unreadable_callbacks_are_refused(hooked, make_request, status):
    app, settled = hooked
    rv = app.test_client().post(URL, **make_request())
    assert rv.status_code == status, rv.get_data(as_text=True)
    assert set(rv.get_json()["error"]) == {"code", "message", "fields"}
    assert settled == []
    redis = app.extensions["xinbao"].store.redis
    assert not list(redis.scan_iter(keys.insurer_callback("*", "*")))


def test_callbacks_are_refused_without_a_secret(app):
    rv = app.test_client().post(URL, **signed({"jobId": "J"}))
    assert rv.status_code == 404


def test_a_huge_body_is_refused(hooked):
    app, _ = hooked
    rv = app.test_client().post(URL, **signed({"jobId": "J", "pad": "x" * 70_000}))
    assert rv.status_code == 413


# --- end to end: the simulator's callback reaches a running Xinbao --------------------------


def test_the_simulators_claim_callback_settles_the_claim_end_to_end(tmp_path):
    """Xinbao on a free port (fakeredis, tasks run in the request) with the simulator as its
    insurer: the claim stays filed while the insurer reviews it, and its callback settles it."""
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    store_reference(fake, parse_reference_json(demo_text()))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sim = InsurerSim(
        tmp_path, "--claim-review", "1", "--callback-url", f"{base}{URL}",
        "--callback-secret", SECRET, today=DEMO_TODAY.isoformat(),
    ).start()
    try:
        settings = load_settings({
            "XINBAO_INSURER": "http", "XINBAO_INSURER_URL": sim.url,
            "XINBAO_INSURER_API_KEY": SIM_API_KEY, "XINBAO_INSURER_CALLBACK_SECRET": SECRET,
        })
        app = create_app(settings, redis_client=fake, celery=dict(EAGER))
        clock = Clock(DEMO_NOW)
        app.extensions["xinbao"].clock = clock
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            deal_id = claim_filed(app, Api(app.test_client(), clock))
            workflow = app.extensions["xinbao"]
            # The worker the claim dispatched asks the insurer: filed, still under review.
            assert workflow.settle_claim(deal_id).state == "claim_filed"
            wait_until(
                lambda: workflow.store.get(deal_id).state == "indemnified", 20,
                what="the claim settled by the insurer's callback",
            )
            events = [e["type"] for e in workflow.store.events(deal_id)]
            assert events.count("indemnified") == 1
        finally:
            server.shutdown()
    finally:
        sim.stop()
