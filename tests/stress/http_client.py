"""The benches' load generator: JSON over keep-alive HTTP/1.1 with the standard library's
``http.client``, one connection per client thread.

``requests`` cost the bench about 1 ms of CPU per deal on the machine it measures (its session,
adapters, cookie jar and header merging), a quarter of everything; this client does the same
work (encode the body, send it, read and decode the answer) for a fraction, so more of the two
cores is left to the servers measured, Xinbao and the naive app alike.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# A keep-alive connection the server closed meanwhile fails on its next request like this; the
# request is sent again once on a new connection (every bench POST carries an Idempotency-Key,
# so a second send cannot make a second deal).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpClient:
    """Requests to one server, ``base`` (``http://host:port``), from any number of threads."""

    base: str
    timeout: float = 30.0
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            parts = urlsplit(self.base)
            connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                    timeout=self.timeout)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Answer:
        """``method`` ``path`` with ``body`` sent as JSON (if not None); the answer read whole."""
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        for attempt in (0, 1):
            connection = self._connection(fresh=attempt > 0)
            try:
                connection.request(method, path, data, sent)
                response = connection.getresponse()
                return Answer(response.status, response.read())
            except _STALE:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, body, headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, None, headers)
