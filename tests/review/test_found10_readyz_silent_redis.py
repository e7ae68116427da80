"""Review of issue 10: /readyz waited minutes on a Redis (store or broker) that accepts
connections but never answers (a stopped process, a black-holed network), instead of 503.

The store check used the app's client (10 s a command, retried); the broker check bounded only
the TCP connect, then read without a timeout. A load balancer's or compose's health check hung
(and held a gunicorn worker) for minutes.

The bound below is a hang detector, not a performance assertion: the answer is due in about a
second, and the test fails only if it has not come after 30.
"""

from __future__ import annotations

import socket
import threading

import pytest

from web import create_app
from workflow.settings import load_settings

HANG_SECONDS = 30


@pytest.mark.parametrize("silent", ["redis", "broker"])
def test_readyz_answers_503_while_redis_or_the_broker_is_silent(redis_server_url, silent):
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    store, broker = (url, "memory://") if silent == "redis" else (redis_server_url, url)
    app = create_app(load_settings({"REDIS_URL": store}), celery={"broker_url": broker})
    answers: list = []
    probe = threading.Thread(
        target=lambda: answers.append(app.test_client().get("/readyz")), daemon=True
    )
    try:
        probe.start()
        probe.join(HANG_SECONDS)
        assert answers, f"/readyz still waiting after {HANG_SECONDS} s on a silent Redis"
        rv = answers[0]
        assert rv.status_code == 503
        assert rv.get_json()[silent].startswith("unavailable")
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()
