"""What the insurer is told of its buyer limits' use: an outbox written with each transition and
drained to the insurer's gateway by a worker (a limit used at payout, less as principal comes
back, none once the advance ends)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.deal import Deal
from workflow.money import fmt, from_cents
from workflow.portfolio import outstanding_cents
from workflow.states import State
from workflow.store import Ops

# One drain reports at most this many changes; the next beat takes the rest.
DRAIN_BATCH = 200
DRAIN_LOCK_SECONDS = 120


@dataclass(frozen=True)
class LimitUsage:
    """The principal a deal now uses on the insurer's buyer limit (0: released). ``report_id``
    is unique per change, so an insurer told twice counts it once."""

    report_id: str
    deal_id: str
    policy_no: str
    buyer_code: str
    currency: str
    amount: Decimal


def usage_ops(deal: Deal, new: State, changes: dict[str, Any] | None, ops: Ops) -> Ops:
    """Queue, in the same atomic step, the change of the deal's use of the buyer limit."""
    changes = changes or {}
    before = outstanding_cents(deal.state, deal.get("loan"))
    after = outstanding_cents(new, changes.get("loan", deal.get("loan")))
    if after == before:
        return ops
    entry = {
        "report_id": f"{deal.id}:{deal.version + 1}",
        "deal_id": deal.id,
        "policy_no": deal.fields.get("policy_no", ""),
        "buyer_code": (deal.get("buyer") or {}).get("code", ""),
        "currency": deal.fields.get("currency", ""),
        "amount": fmt(from_cents(after)),
    }
    return ops.rpush(keys.insurer_outbox(), json.dumps(entry, separators=(",", ":")))


def drain_usage(redis: Any, insurer: Any, batch: int = DRAIN_BATCH) -> int:
    """Report the oldest changes to the insurer, in order, and drop each once reported; stop
    at the first the insurer cannot take (InsurerUnavailable propagates, the rest wait). One
    drain at a time (a lock), so nothing is dropped unreported."""
    lock = keys.insurer_outbox() + ":lock"
    if not redis.set(lock, "1", nx=True, ex=DRAIN_LOCK_SECONDS):
        return 0
    reported = 0
    try:
        for raw in redis.lrange(keys.insurer_outbox(), 0, batch - 1):
            entry = json.loads(raw)
            insurer.report_limit_usage(
                LimitUsage(
                    report_id=entry["report_id"],
                    deal_id=entry["deal_id"],
                    policy_no=entry["policy_no"],
                    buyer_code=entry["buyer_code"],
                    currency=entry["currency"],
                    amount=Decimal(entry["amount"]),
                )
            )
            redis.lpop(keys.insurer_outbox())
            reported += 1
    finally:
        redis.delete(lock)
    return reported


__all__ = ["LimitUsage", "drain_usage", "usage_ops"]
