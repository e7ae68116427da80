"""Each bank's portfolio figures, kept by the transitions themselves (never by scanning deals):
what every move of a deal changes in them, and reading them back.

Outstanding is the principal not yet repaid on the bank's open advances (``disbursed`` and
``overdue``), in cents per currency, and by buyer and by country; ``overdue`` the part of it
past due (the portfolio at risk); ``indemnity`` what insurers paid the bank; borrowers the
exporters with an open advance now, and first-time borrowers (首贷户) those the bank paid an
advance to for the first time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.deal import Deal
from workflow.money import from_cents, to_cents
from workflow.reference.records import as_text
from workflow.states import State
from workflow.store import Ops

OPEN = frozenset({State.DISBURSED, State.OVERDUE})


def _outstanding(state: State, loan: dict[str, Any] | None) -> int:
    if state not in OPEN or not loan:
        return 0
    return to_cents(Decimal(loan["outstanding"]))


def portfolio_ops(deal: Deal, new: State, changes: dict[str, Any] | None, ops: Ops) -> Ops:
    """The portfolio changes of one move of ``deal`` into ``new`` with ``changes``."""
    bank_id = deal.bank_id
    if not bank_id:
        return ops
    changes = changes or {}
    before = _outstanding(deal.state, deal.get("loan"))
    after = _outstanding(new, changes.get("loan", deal.get("loan")))
    currency = deal.fields.get("currency", "")
    buyer = deal.get("buyer") or {}
    key = keys.portfolio(bank_id)
    if after != before:
        delta = after - before
        ops.hincr(key, f"outstanding:{currency}", delta)
        ops.hincr(key, f"outstanding:{currency}:buyer:{buyer.get('code', '')}", delta)
        ops.hincr(key, f"outstanding:{currency}:country:{buyer.get('country', '')}", delta)
    overdue_before = before if deal.state == State.OVERDUE else 0
    overdue_after = after if new == State.OVERDUE else 0
    if overdue_after != overdue_before:
        ops.hincr(key, f"overdue:{currency}", overdue_after - overdue_before)
    uscc = deal.fields.get("exporter_uscc", "")
    if (before > 0) != (after > 0):
        ops.hincr(keys.portfolio_borrowers(bank_id), uscc, 1 if after > 0 else -1)
    if deal.state == State.APPROVED and new == State.DISBURSED:
        ops.sadd_count(keys.borrowers_ever(bank_id), uscc, key, "first_time_borrowers")
    decided = changes.get("claim_decision")
    if new == State.INDEMNIFIED and decided and deal.state != State.INDEMNIFIED:
        ops.hincr(key, f"indemnity:{currency}", to_cents(Decimal(decided["indemnity"])))
    return ops


def figures(redis: Any, bank_id: str) -> dict[str, Any]:
    """The bank's portfolio as read from its counters: amounts as Decimal per currency."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.portfolio(bank_id))
    pipe.hlen(keys.portfolio_borrowers(bank_id))
    raw, borrowers = pipe.execute()
    result: dict[str, Any] = {
        "outstanding": {},
        "by_buyer": {},
        "by_country": {},
        "overdue": {},
        "indemnity": {},
        "borrowers": int(borrowers),
        "first_time_borrowers": 0,
    }
    for name, value in ((as_text(k), int(v)) for k, v in raw.items()):
        parts = name.split(":")
        if name == "first_time_borrowers":
            result["first_time_borrowers"] = value
        elif parts[0] == "outstanding" and len(parts) == 2:
            result["outstanding"][parts[1]] = from_cents(value)
        elif parts[0] == "outstanding" and len(parts) == 4:
            group = "by_buyer" if parts[2] == "buyer" else "by_country"
            result[group].setdefault(parts[1], {})[parts[3]] = from_cents(value)
        elif parts[0] in ("overdue", "indemnity"):
            result[parts[0]][parts[1]] = from_cents(value)
    return result


__all__ = ["figures", "portfolio_ops"]
