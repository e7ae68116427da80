"""Review of issue 10: a webhook POST made from a thread already running an event loop.

The whole-attempt deadline ran the POST with anyio.run, which refuses to start in a thread
whose event loop runs: in the full suite (after the browser tests) and in any host that runs
the delivery code under asyncio, every delivery raised RuntimeError instead of posting.
"""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workflow.webhook_delivery import DeliveryConfig, http_post


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_post_from_inside_a_running_event_loop_is_made():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = DeliveryConfig(
        retry_seconds=60, backoff_seconds=1, backoff_max_seconds=2,
        connect_timeout_seconds=2, timeout_seconds=5,
    )
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    async def inside_a_loop():
        return http_post(url, {"Content-Type": "application/json"}, b"{}", config)

    results = []
    # asyncio.run on a thread of its own: the test's thread may already run a loop itself.
    runner = threading.Thread(target=lambda: results.append(asyncio.run(inside_a_loop())))
    try:
        runner.start()
        runner.join(30)
    finally:
        server.shutdown()
    assert [r.status for r in results] == [204]
