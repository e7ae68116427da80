"""The benches' load: deals POSTed through the lean HTTP client (``http_client``), in a closed
loop (so many clients, each sending its next deal when the last is answered) or an open one (a
fixed rate, whatever the answers do), and requests/s of a POST endpoint."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from tests.stress import dataset
from tests.stress.http_client import HttpClient


@dataclass
class Sent:
    index: int
    at: float  # when the request was sent (or, open loop, scheduled)
    status: int = 0
    deal_id: str | None = None


@dataclass
class Client:
    """The bench's load generator: deals POSTed over keep-alive HTTP (``http_client``)."""

    base: str
    http: HttpClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = HttpClient(self.base)

    def post_deal(self, index: int, scheduled: float | None = None) -> Sent:
        sent = Sent(index, scheduled or time.time())
        answer = self.http.post(
            "/api/v1/deals", dataset.deal_body(index),
            headers={**dataset.auth(dataset.EXPORTER_TOKEN), "Idempotency-Key": f"b{index}"},
        )
        sent.status = answer.status
        if answer.status == 202:
            sent.deal_id = answer.json()["id"]
        return sent


def closed_loop(client: Client, indexes: range, concurrency: int) -> list[Sent]:
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(client.post_deal, indexes))


def open_loop(client: Client, indexes: range, rate: float) -> list[Sent]:
    """Send at a fixed rate whatever the responses do; latency counts from the scheduled time,
    so a slow server cannot hide its queueing (no coordinated omission)."""
    start = time.time() + 0.2
    futures = []
    with ThreadPoolExecutor(64) as pool:
        for n, index in enumerate(indexes):
            scheduled = start + n / rate
            delay = scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(client.post_deal, index, scheduled))
        return [f.result() for f in futures]


def requests_per_second(base: str, path: str, headers: dict, indexes: range,
                        concurrency: int, lean: bool = True) -> float:
    """POST one fresh deal body per index to ``path`` with ``concurrency`` clients: the bench's
    lean client, or (``lean=False``) the ``requests`` library as this figure was first taken
    with (its own CPU then bounds the bare echo: see docs/performance.md)."""
    client = HttpClient(base)
    local = threading.local()

    def one(n: int) -> int:
        h = {**headers, "Idempotency-Key": f"api{n}"}
        if lean:
            return client.post(path, dataset.deal_body(n), h).status
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.post(base + path, json=dataset.deal_body(n), headers=h,
                            timeout=30).status_code

    count = len(indexes)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(one, indexes))
    elapsed = time.perf_counter() - t0
    assert all(c == 202 for c in codes), {c: codes.count(c) for c in set(codes)}
    return count / elapsed
