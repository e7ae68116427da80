"""Signing of the webhooks Xinbao posts to banks: HMAC-SHA256 over "timestamp.body" (as Stripe)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

EVENT_ID_HEADER = "Xinbao-Event-Id"
TIMESTAMP_HEADER = "Xinbao-Timestamp"
SIGNATURE_HEADER = "Xinbao-Signature"
# The only scheme so far; a later one gets its own prefix and both are sent during a change.
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str, timestamp: str, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of ``timestamp``, a dot and ``body`` under ``secret``."""
    message = _bytes(timestamp) + b"." + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_headers(secret: str, event_id: str, body: bytes, now: float) -> dict[str, str]:
    """The headers of one delivery attempt (a fresh timestamp each attempt)."""
    timestamp = str(int(now))
    return {
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, timestamp, body)}",
        "Content-Type": "application/json",
    }


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes | str,
    header: str | None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (``v1=<hex>``, several comma-separated allowed) signs ``body`` sent at
    ``timestamp`` with ``secret``, and the timestamp is within ``tolerance`` seconds of ``now``
    (a captured request replayed later is refused). Never raises on malformed input."""
    if not secret or not timestamp or not header:
        return False
    # Headers arrive as latin-1 text: anything else is not ours (and compare_digest would raise).
    if not timestamp.isascii() or not timestamp.isdigit() or not header.isascii():
        return False
    sent = int(timestamp)
    current = time.time() if now is None else now
    if not math.isfinite(current) or abs(current - sent) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    candidates = [part.strip() for part in header.split(",")]
    return any(
        hmac.compare_digest(expected, value)
        for scheme, _, value in (c.partition("=") for c in candidates)
        if scheme == SCHEME
    )


__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "signature_headers",
    "verify_signature",
]
