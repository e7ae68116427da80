"""Webhook callbacks from the insurer: checked, taken once, turned into the step they ask for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workflow import keys
from workflow.callback_signature import callback_signed
from workflow.identifiers import printable
from workflow.states import State
from workflow.store import DealStore

# How long a callback's id is remembered: an insurer retries for hours, never for a week.
REMEMBER_SECONDS = 7 * 24 * 3600
MAX_ID = 128


class CallbackRefused(Exception):
    """A callback that is not the insurer's (bad or stale signature) or not readable."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class CallbackOutcome:
    duplicate: bool
    # The deal whose filed claim the insurer has decided: a worker asks for the decision.
    settle_claim: str | None = None


def take_callback(
    store: DealStore,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
) -> CallbackOutcome:
    """Check a callback and take it once. Unknown kinds, unknown deals and deals no longer
    waiting are acknowledged and change nothing; only a signed, readable callback counts."""
    if not secret:
        raise CallbackRefused(404, "CALLBACKS_OFF", "insurer callbacks are not configured")
    if not callback_signed(secret, timestamp, signature, body, now=now):
        raise CallbackRefused(401, "BAD_SIGNATURE", "the callback's signature does not verify")
    payload = _payload(body)
    kind = _text(payload.get("type")) or "job_processed"
    callback_id = _text(payload.get("claimId") if kind == "claim_decided" else payload.get("jobId"))
    if not callback_id:
        raise CallbackRefused(422, "VALIDATION_FAILED", "the callback names no job or claim")
    first = store.redis.set(
        keys.insurer_callback(kind, callback_id), "1", nx=True, ex=REMEMBER_SECONDS
    )
    if not first:
        return CallbackOutcome(duplicate=True)
    if kind == "claim_decided":
        deal_id = _text(payload.get("dealId"))
        deal = store.get(deal_id) if deal_id else None
        if deal is not None and deal.state == State.CLAIM_FILED:
            return CallbackOutcome(duplicate=False, settle_claim=deal.id)
    return CallbackOutcome(duplicate=False)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser goes is no callback either.
        raise CallbackRefused(400, "BAD_JSON", "the callback body is not JSON") from None
    if not isinstance(payload, dict):
        raise CallbackRefused(400, "BAD_JSON", "the callback body is not a JSON object")
    return payload


def _text(value: Any) -> str:
    """A short printable identifier, or "" (anything else is treated as absent)."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        return ""
    return value if printable(value) == value and value.isprintable() else ""


__all__ = ["CallbackOutcome", "CallbackRefused", "take_callback"]
