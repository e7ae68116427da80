"""The simulator's webhook callbacks: signed (HMAC-SHA256 over timestamp and body), duplicated
and delayed on request; a forged or replayed signature is refused by the verifier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import DEMO_TODAY
from tests.support import InsurerSim, free_port, wait_until
from tests.workflow.test_insurer_http import adapter
from workflow.callback_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    callback_signed,
    sign_callback,
)

SECRET = "callback-secret-for-tests"


class Receiver:
    """A tiny webhook endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict, bytes]] = []
        self.server = make_server("127.0.0.1", self.port, self._app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @Request.application
    def _app(self, request: Request) -> Response:
        self.received.append((dict(request.headers), request.get_data()))
        return Response("", 204)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callbacks"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, receiver) -> Iterator[InsurerSim]:
    server = InsurerSim(
        tmp_path_factory.mktemp("cb-sim"),
        "--callback-url", receiver.url, "--callback-secret", SECRET,
        today=DEMO_TODAY.isoformat(),
    ).start()
    yield server
    server.stop()


def _for_job(receiver: Receiver, job_id: str) -> list[tuple[dict, bytes]]:
    return [(h, b) for h, b in receiver.received if json.loads(b)["jobId"] == job_id]


def _job_of(sim: InsurerSim, deal: str) -> str:
    http = adapter(sim)
    http.notify_possible_loss(deal, "SIN-2026-0001", DEMO_TODAY)
    answer = http._call(
        "POST", "/v1/policies/SIN-2026-0001/notices",
        json={"dealId": deal, "on": DEMO_TODAY.isoformat()},
        headers={"Idempotency-Key": f"notice:SIN-2026-0001:{deal}"},
    )
    return answer.json()["jobId"]


def test_a_processed_job_is_called_back_signed(sim, receiver) -> None:
    sim.reset()
    job = _job_of(sim, "D-cb-1")
    [(headers, body)] = wait_until(lambda: _for_job(receiver, job), 10, what="callback")
    assert json.loads(body)["result"] == {"reference": "NPL-SIN-2026-0001-D-cb-1"}
    stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert callback_signed(SECRET, stamp, signature, body, now=time.time())


def test_duplicate_callbacks_arrive_twice(sim, receiver) -> None:
    sim.reset()
    sim.faults(duplicate_callbacks=True)
    job = _job_of(sim, "D-cb-2")
    copies = wait_until(lambda: len(_for_job(receiver, job)) == 2 and _for_job(receiver, job),
                        10, what="two callbacks")
    assert copies[0][1] == copies[1][1]


def test_forged_or_replayed_callbacks_are_refused() -> None:
    body = b'{"jobId":"JOB-1","status":"processed","result":{}}'
    now = time.time()
    stamp = str(int(now))
    good = sign_callback(SECRET, stamp, body)
    assert callback_signed(SECRET, stamp, good, body, now=now)
    assert not callback_signed(SECRET, stamp, good, body + b" ", now=now)  # body changed
    assert not callback_signed("another-secret", stamp, good, body, now=now)
    assert not callback_signed(SECRET, stamp, "0" * 64, body, now=now)
    assert not callback_signed(SECRET, stamp, good, body, now=now + 3600)  # replayed late
    assert not callback_signed(SECRET, None, good, body, now=now)
    assert not callback_signed(SECRET, "not-a-time", good, body, now=now)
