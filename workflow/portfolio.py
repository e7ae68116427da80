"""Each bank's portfolio figures, kept by the transitions themselves (never by scanning deals):
what every move of a deal changes in them, and reading them back.

Outstanding is the principal not yet repaid on the bank's open advances (``disbursed`` and
``overdue``), in cents per currency, and by buyer and by country; ``overdue`` the part of it
past due (the portfolio at risk), and by arrears bucket from an index of the overdue advances
alone; ``deferred`` the open advances deferred at least once; ``claimed`` the losses claimed
and awaiting the insurer; ``indemnity`` what insurers paid the bank; borrowers the exporters
with an open advance now, and first-time borrowers (首贷户) those the bank paid an advance to
for the first time.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.business_days import BUCKETS, arrears_bucket, days_past_due
from workflow.deal import Deal
from workflow.money import from_cents, to_cents
from workflow.reference.records import as_text
from workflow.states import State
from workflow.store import Ops

OPEN = frozenset({State.DISBURSED, State.OVERDUE})


def outstanding_cents(state: State, loan: dict[str, Any] | None) -> int:
    """The principal an advance owes (what it uses of the buyer limit), 0 unless open."""
    if state not in OPEN or not loan:
        return 0
    return to_cents(Decimal(loan["outstanding"]))


def _claimed(state: State, claim: dict[str, Any] | None) -> int:
    if state != State.CLAIM_FILED or not claim:
        return 0
    return to_cents(Decimal(claim["loss_amount"]))


def portfolio_ops(deal: Deal, new: State, changes: dict[str, Any] | None, ops: Ops) -> Ops:
    """The portfolio changes of one move of ``deal`` into ``new`` with ``changes``."""
    bank_id = deal.bank_id
    if not bank_id:
        return ops
    changes = changes or {}
    before = outstanding_cents(deal.state, deal.get("loan"))
    after = outstanding_cents(new, changes.get("loan", deal.get("loan")))
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
    # The arrears index aggregates the overdue advances by currency and due date (a due date
    # does not move while an advance is overdue: a deferral takes it out of overdue first).
    arrears_due = ""
    if State.OVERDUE in (deal.state, new):
        loan = (changes.get("loan") if new == State.OVERDUE else None) or deal.get("loan") or {}
        arrears_due = f"{currency}|{loan.get('due_date', '')}"
    if overdue_after != overdue_before:
        delta = overdue_after - overdue_before
        ops.hincr(key, f"overdue:{currency}", delta)
        ops.hincr(keys.portfolio_arrears(bank_id), arrears_due, delta)
    if (deal.state == State.OVERDUE) != (new == State.OVERDUE):
        entering = new == State.OVERDUE
        ops.hincr(keys.portfolio_arrears(bank_id), f"{arrears_due}|n", 1 if entering else -1)
    was_deferred = deal.state in OPEN and int(deal.fields.get("deferral_count") or 0) > 0
    is_deferred = (
        new in OPEN
        and int(changes.get("deferral_count", deal.fields.get("deferral_count")) or 0) > 0
    )
    if was_deferred != is_deferred:
        ops.hincr(key, "deferred_deals", 1 if is_deferred else -1)
    deferred_delta = (after if is_deferred else 0) - (before if was_deferred else 0)
    if deferred_delta:
        ops.hincr(key, f"deferred:{currency}", deferred_delta)
    claimed_before = _claimed(deal.state, deal.get("claim"))
    claimed_after = _claimed(new, changes.get("claim", deal.get("claim")))
    if claimed_after != claimed_before:
        ops.hincr(key, f"claimed:{currency}", claimed_after - claimed_before)
    uscc = deal.fields.get("exporter_uscc", "")
    if (before > 0) != (after > 0):
        ops.hincr(keys.portfolio_borrowers(bank_id), uscc, 1 if after > 0 else -1)
    if deal.state == State.APPROVED and new == State.DISBURSED:
        ops.sadd_count(keys.borrowers_ever(bank_id), uscc, key, "first_time_borrowers")
    decided = changes.get("claim_decision")
    if new == State.INDEMNIFIED and decided and deal.state != State.INDEMNIFIED:
        ops.hincr(key, f"indemnity:{currency}", to_cents(Decimal(decided["indemnity"])))
    return ops


BUCKET_NAMES = tuple(name for _, name in BUCKETS) + ("90+",)
CLAIM_STATES = (State.CLAIM_FILED, State.INDEMNIFIED, State.CLAIM_REJECTED)


def figures(redis: Any, bank_id: str, today: date | None = None) -> dict[str, Any]:
    """The bank's portfolio as read from its counters: amounts as Decimal per currency;
    the arrears buckets as of ``today`` (a business date; None leaves them out)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.portfolio(bank_id))
    pipe.hlen(keys.portfolio_borrowers(bank_id))
    for state in CLAIM_STATES:
        pipe.zcard(keys.bank_state(bank_id, state))
    if today is not None:
        pipe.hgetall(keys.portfolio_arrears(bank_id))
    raw, borrowers, pending, paid, rejected, *arrears = pipe.execute()
    result: dict[str, Any] = {
        "outstanding": {},
        "by_buyer": {},
        "by_country": {},
        "overdue": {},
        "indemnity": {},
        "deferred": {},
        "claimed": {},
        "borrowers": int(borrowers),
        "first_time_borrowers": 0,
        "deferred_deals": 0,
        "claims": {"pending": int(pending), "paid": int(paid), "rejected": int(rejected)},
    }
    if today is not None:
        result["arrears"] = _buckets(arrears[0], today)
    for name, value in ((as_text(k), int(v)) for k, v in raw.items()):
        parts = name.split(":")
        if name in ("first_time_borrowers", "deferred_deals"):
            result[name] = value
        elif parts[0] == "outstanding" and len(parts) == 2:
            result["outstanding"][parts[1]] = from_cents(value)
        elif parts[0] == "outstanding" and len(parts) == 4:
            group = "by_buyer" if parts[2] == "buyer" else "by_country"
            result[group].setdefault(parts[1], {})[parts[3]] = from_cents(value)
        elif parts[0] in ("overdue", "indemnity", "deferred", "claimed"):
            result[parts[0]][parts[1]] = from_cents(value)
    return result


def _buckets(raw: dict, today: date) -> dict[str, dict[str, dict[str, Any]]]:
    """Overdue principal and advances by currency and arrears bucket, as of ``today``, from
    the index's figures per currency and due date (a few hundred fields, not one a deal)."""
    cents: dict[str, dict[str, int]] = {}
    counts: dict[str, dict[str, int]] = {}
    for name, value in raw.items():
        currency, due, *count = as_text(name).split("|")
        bucket = arrears_bucket(days_past_due(date.fromisoformat(due), today)) or BUCKET_NAMES[0]
        into = counts if count else cents
        into.setdefault(currency, dict.fromkeys(BUCKET_NAMES, 0))[bucket] += int(value)
    return {
        currency: {
            bucket: {
                "amount": from_cents(cents.get(currency, {}).get(bucket, 0)),
                "advances": counts[currency][bucket],
            }
            for bucket in BUCKET_NAMES
        }
        for currency in counts
    }


__all__ = ["BUCKET_NAMES", "figures", "outstanding_cents", "portfolio_ops"]
