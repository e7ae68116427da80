"""Signing of insurer webhook callbacks: HMAC-SHA256 over the timestamp, a dot and the body."""

from __future__ import annotations

import hashlib
import hmac
import math

TIMESTAMP_HEADER = "X-Sim-Timestamp"
SIGNATURE_HEADER = "X-Sim-Signature"


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """The hex signature of ``body`` sent at ``timestamp`` (Unix seconds, as text)."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def callback_signed(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether the callback carries a valid signature made within ``tolerance_s`` of ``now``
    (an old signature replayed later is refused too)."""
    # A signature is hex: anything else (a header's latin-1 bytes) would make compare_digest
    # raise instead of answer.
    if not secret or not timestamp or not signature or not signature.isascii():
        return False
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    # NaN compares false with everything: "nan" would pass the freshness window forever.
    if not math.isfinite(sent) or abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign_callback(secret, timestamp, body), signature)
