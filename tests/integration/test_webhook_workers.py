"""Webhooks end to end: real Redis, real Celery worker processes and beat, real HTTP receivers."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from tests.support import BIN, Processes, RedisServer, free_port, supervised, wait_until
from workflow import keys, webhooks
from workflow.webhook_signature import verify_signature

pytestmark = pytest.mark.integration

EVENTS_PER_BANK = 8


class Receiver:
    """An HTTP endpoint in a thread: records every request, answers as ``answer(n)`` says for
    the n-th request (a status, or a callable run first, e.g. a wait)."""

    def __init__(self, answer: Callable[[int], int]):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.answer = answer
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.answer(n)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # Xinbao gave up waiting (its timeout) and closed the connection

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xinbao-hooks"

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r["headers"]["Xinbao-Event-Id"] for r in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def append_feed(client: redis.Redis, bank_id: str, deal_id: str, version: int) -> str:
    """An entry on the bank's feed as a deal transition writes it (workflow/feed.py)."""
    event = {"v": version, "type": "state_changed", "at": "2027-01-04T09:00:00+00:00",
             "by": "system", "from": "verifying", "to": "routing"}
    return client.xadd(keys.bank_feed(bank_id), {"deal": deal_id, "event": json.dumps(event)})


def add_hook(env: dict, bank_id: str, url: str) -> tuple[str, str]:
    """`xinbao webhook add` for real: the webhook id and the secret it prints once."""
    out = subprocess.run([str(BIN / "xinbao"), "webhook", "add", "--bank", bank_id, "--url", url],
                         env={**env, "PATH": str(BIN)}, check=True, capture_output=True,
                         text=True).stdout
    hook_id = re.search(r"added webhook (wh_\w+)", out)[1]
    secret = re.search(r"signing secret \(shown only now\): (\S+)", out)[1]
    return hook_id, secret


def test_webhooks_retry_until_the_receiver_recovers_and_a_hung_one_delays_no_other(
    tmp_path: Path,
):
    server = RedisServer(tmp_path / "redis").start()
    env = {
        "REDIS_URL": server.url,
        "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
        "XINBAO_WEBHOOK_DISPATCH_SECONDS": "0.3",
        "XINBAO_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "XINBAO_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        "XINBAO_WEBHOOK_CONNECT_TIMEOUT_SECONDS": "1",
        "XINBAO_WEBHOOK_TIMEOUT_SECONDS": "1",
    }
    release_hung = threading.Event()

    def flaky(n: int) -> int:
        # 500, 500, then a reply slower than Xinbao waits, then well.
        if n == 2:
            release_hung.wait(3)
        return 500 if n < 2 else 200

    def hung(n: int) -> int:
        release_hung.wait(60)  # holds every request until the test lets it go
        return 200

    flaky_bank, healthy_bank, hung_bank = Receiver(flaky), Receiver(lambda n: 200), Receiver(hung)
    receivers = {"BANK-A": flaky_bank, "BANK-B": healthy_bank, "BANK-C": hung_bank}
    client = redis.Redis.from_url(server.url, decode_responses=True)
    procs = Processes(env, tmp_path)
    try:
        with supervised(server, procs):
            for bank_id in receivers:
                client.hset(keys.bank(bank_id), "name", bank_id)
            hooks = {bank: add_hook(env, bank, r.url) for bank, r in receivers.items()}
            expected: dict[str, set[str]] = {bank: set() for bank in receivers}
            # Interleaved events of two deals per bank, as a busy feed would hold them.
            for version in range(1, EVENTS_PER_BANK // 2 + 1):
                for bank in receivers:
                    for deal in (f"D-{bank}-1", f"D-{bank}-2"):
                        append_feed(client, bank, deal, version)
                        expected[bank].add(f"{deal}:{version}")
            procs.worker("worker", queues="celery")  # the deal pipeline's queue only
            procs.worker("hooks", queues="webhooks", pool="threads", concurrency=4)
            procs.beat()

            def complete(bank: str) -> bool:
                return set(receivers[bank].event_ids()) >= expected[bank]

            wait_until(lambda: complete("BANK-A") and complete("BANK-B"), 60,
                       what="the flaky and the healthy bank to get every event")
            # Meanwhile the hung endpoint held its deliveries: none of them got through, and
            # it held at most its own one delivery thread at a time.
            stats = {row["bank_id"]: row for row in webhooks.webhook_stats(client)}
            assert stats["BANK-C"]["delivered"] == 0
            assert stats["BANK-B"]["delivered"] == EVENTS_PER_BANK
            assert stats["BANK-B"]["failed_attempts"] == 0

            release_hung.set()
            wait_until(lambda: complete("BANK-C"), 60, what="the hung bank, released, to catch up")
            def c_pending() -> int:
                rows = webhooks.webhook_stats(client)
                return next(r["pending"] for r in rows if r["bank_id"] == "BANK-C")

            wait_until(lambda: c_pending() == 0, 30, what="the hung bank's queue to empty")

            # No event went to another bank's endpoint; each went at least once.
            for bank, receiver in receivers.items():
                assert set(receiver.event_ids()) == expected[bank], bank
            # Every request was signed with its own bank's secret, and only that one.
            for bank, receiver in receivers.items():
                secret = hooks[bank][1]
                others = [hooks[b][1] for b in receivers if b != bank]
                for request in receiver.requests:
                    h = request["headers"]
                    ts, sig = h["Xinbao-Timestamp"], h["Xinbao-Signature"]
                    assert verify_signature(secret, ts, request["body"], sig)
                    assert not any(verify_signature(o, ts, request["body"], sig) for o in others)
                    assert json.loads(request["body"])["bank_id"] == bank
            # The flaky bank: its first event was tried three times before it got through,
            # with the same event id and the same body each time (de-duplicable), and the
            # rest followed in feed order.
            ids = flaky_bank.event_ids()
            assert ids[0] == ids[1] == ids[2] == ids[3] == "D-BANK-A-1:1"
            assert len({r["body"] for r in flaky_bank.requests[:4]}) == 1
            assert ids[4:] == sorted(ids[4:], key=lambda i: (int(i.rsplit(":", 1)[1]), i))
            rows = {row["bank_id"]: row for row in webhooks.webhook_stats(client)}
            assert rows["BANK-A"]["delivered"] == EVENTS_PER_BANK
            assert rows["BANK-A"]["failed_attempts"] == 3
            assert rows["BANK-A"]["dead"] == 0
            # What the operator sees.
            out = subprocess.run(
                [str(BIN / "xinbao"), "webhook", "deliveries", hooks["BANK-A"][0], "--failed"],
                env={**env, "PATH": str(BIN)}, check=True, capture_output=True, text=True,
            ).stdout
            assert out.count("HTTP 500") == 2 and out.count("timeout") == 1, out
            assert out.count("D-BANK-A-1:1") == 3, out
    finally:
        release_hung.set()
        for receiver in receivers.values():
            receiver.stop()
