"""Webhook callbacks of processed jobs: signed, sent from a background thread, retried."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx

from workflow.callback_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback

log = logging.getLogger("insurer_sim.callbacks")

# A callback the receiver does not take (not 2xx, or no answer) is sent again this many times
# in all, waiting RETRY_BASE_S, twice that, ... between tries.
ATTEMPTS = 5
RETRY_BASE_S = 0.2


class Callbacks:
    """Sends ``{"jobId", "status", "result"}`` to ``url``; counts what it sent."""

    def __init__(self, url: str | None, secret: str):
        self.url = url
        self.secret = secret
        self.sent = 0
        self.delivered = 0
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any], *, delay_s: float = 0, copies: int = 1) -> None:
        if not self.url:
            return
        for _ in range(copies):
            threading.Thread(target=self._deliver, args=(payload, delay_s), daemon=True).start()

    def _deliver(self, payload: dict[str, Any], delay_s: float) -> None:
        if delay_s:
            time.sleep(delay_s)
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in range(ATTEMPTS):
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign_callback(self.secret, stamp, body),
            }
            with self._lock:
                self.sent += 1
            try:
                answer = httpx.post(self.url, content=body, headers=headers, timeout=5)
                if answer.is_success:
                    with self._lock:
                        self.delivered += 1
                    return
            except httpx.HTTPError as exc:
                log.info("callback not delivered: %s", exc)
            time.sleep(RETRY_BASE_S * 2**attempt)
        log.warning("callback of job %s given up", payload.get("jobId"))
