"""The benches' HTTP client: JSON both ways, one kept-alive connection per thread, and a
request sent again once when the server had closed that connection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.stress.http_client import HttpClient


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict, int]] = []
    # Close the connection after each answer without saying so: the client's next request on
    # it finds it gone, as after a server's keep-alive timeout.
    drop_after_answer = False

    def _answer(self, body: bytes) -> None:
        self.seen.append((self.command, self.path, json.loads(body or b"null") or {},
                          self.client_address[1]))
        out = json.dumps({"path": self.path, "got": json.loads(body or b"null")}).encode()
        self.send_response(202 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        if self.drop_after_answer:
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:  # noqa: N802
        self._answer(b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Recorder.seen = []
    Recorder.drop_after_answer = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_posts_json_and_reads_the_answer_on_one_kept_alive_connection(server):
    client = HttpClient(base(server))
    first = client.post("/api/v1/deals", {"amount": "1.00"}, {"Idempotency-Key": "k1"})
    second = client.get("/api/v1/deals/x")
    assert (first.status, first.json()) == (202, {"path": "/api/v1/deals",
                                                   "got": {"amount": "1.00"}})
    assert second.status == 200
    assert [s[:3] for s in Recorder.seen] == [("POST", "/api/v1/deals", {"amount": "1.00"}),
                                              ("GET", "/api/v1/deals/x", {})]
    assert Recorder.seen[0][3] == Recorder.seen[1][3], "a second connection was opened"


def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_once(server):
    Recorder.drop_after_answer = True
    client = HttpClient(base(server))
    answers = [client.post("/p", {"n": n}) for n in range(3)]
    assert [a.json()["got"] for a in answers] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [s[2] for s in Recorder.seen] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_each_thread_has_its_own_connection(server):
    client = HttpClient(base(server))
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        barrier.wait()
        for i in range(5):
            assert client.post("/p", {"n": n, "i": i}).status == 202

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(Recorder.seen) == 20
    assert len({s[3] for s in Recorder.seen}) == 4
