"""Review of issue 10: an endpoint that sends its answer's headers a byte at a time held a
delivery for as long as it liked.

httpx's timeouts are per socket operation: an endpoint answering a little within each read
timeout never timed out. The post then outlived the webhook's lease, the dispatcher started a
second delivery task for the same webhook (two posters at once), and every lease period
another thread of the webhooks worker was taken: a slow endpoint slowed other banks. One
attempt must end within connect + read timeout, whatever the endpoint does.
"""

from __future__ import annotations

import socket
import threading
import time

from workflow.webhook_delivery import DeliveryConfig, http_post

DRIBBLES = 30  # header lines, DRIBBLE_SECONDS apart: 6 s in all, each well within the timeout
DRIBBLE_SECONDS = 0.2


def _slow_server(stop: threading.Event) -> tuple[socket.socket, int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    for i in range(DRIBBLES):
                        if stop.is_set():
                            return
                        conn.sendall(f"X-Slow-{i}: 1\r\n".encode())
                        time.sleep(DRIBBLE_SECONDS)
                    conn.sendall(b"Content-Length: 0\r\n\r\n")
                except OSError:
                    pass  # the client gave up: what we want

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_an_attempt_ends_within_its_timeouts_however_slowly_the_endpoint_answers():
    stop = threading.Event()
    listener, port = _slow_server(stop)
    config = DeliveryConfig(connect_timeout_seconds=0.5, timeout_seconds=1.0)
    try:
        result = http_post(f"http://127.0.0.1:{port}/hook", {}, b"{}", config)
    finally:
        stop.set()
        listener.close()
    # Without a deadline on the whole attempt this is the 200 sent after 6 s.
    assert not result.ok
    assert result.error is not None and "timeout" in result.error
