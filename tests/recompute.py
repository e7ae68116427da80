"""What Redis should hold, recomputed from the deals alone: limit holdings, portfolio figures,
schedule members, and whether each event log rebuilds its deal (shared by the model test and
the time-travel harness)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.deal import rebuild
from workflow.money import to_cents
from workflow.states import State

S = State
Fields = dict[str, str]

# States in which a deal holds its buyer-limit reservation (routing on: verified, not ended).
RESERVING = frozenset({S.ROUTING, S.PENDING_BANK, S.APPROVED, S.DISBURSED, S.OVERDUE,
                       S.CLAIM_FILED})
# An advance out: its principal outstanding counts in the bank's portfolio.
OPEN = frozenset({S.DISBURSED, S.OVERDUE})


def _json(fields: Fields, name: str, default: Any = None) -> Any:
    raw = fields.get(name)
    return json.loads(raw) if raw else default


def read_deals(redis: Any, ids: list[str] | None = None) -> tuple[dict[str, Fields],
                                                                  dict[str, list[dict[str, Any]]]]:
    """The hash and event log of each deal of ``ids`` (default: every deal, a test-only read
    that lists the keys), by deal id; a deal not stored is left out."""
    if ids is None:
        names = [k for k in redis.keys(keys.deal("*")) if not k.endswith(":events")]
        ids = sorted(k[len(keys.deal("")) - 1:-1] for k in names)
    pipe = redis.pipeline(transaction=False)
    for deal_id in ids:
        pipe.hgetall(keys.deal(deal_id))
        pipe.lrange(keys.events(deal_id), 0, -1)
    raw = pipe.execute()
    deals = {deal_id: raw[2 * i] for i, deal_id in enumerate(ids) if raw[2 * i]}
    logs = {deal_id: [json.loads(e) for e in raw[2 * i + 1]] for i, deal_id in enumerate(ids)}
    return deals, logs


# --- the event log ------------------------------------------------------------------------------


def event_log_problems(deal_id: str, fields: Fields, log: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a deal's event log: versions 1..n, each event moving from the state
    the one before moved to, the last into the deal's state, and the log rebuilding the hash."""
    problems = []
    versions = [e["v"] for e in log]
    if versions != list(range(1, len(log) + 1)):
        problems.append(f"{deal_id}: event versions {versions}")
    if int(fields.get("version") or 0) != len(log):
        problems.append(f"{deal_id}: version {fields.get('version')}, {len(log)} events")
    if not log or log[-1]["to"] != fields.get("state"):
        problems.append(f"{deal_id}: {fields.get('state')}, its last event into another state")
    froms, tos = [e["from"] for e in log], [None] + [e["to"] for e in log[:-1]]
    if froms != tos:
        problems.append(f"{deal_id}: events do not chain from state to state: "
                        f"from {froms}, previous to {tos}")
    rebuilt = rebuild(log)
    if rebuilt != fields:
        differ = sorted(k for k in set(rebuilt) | set(fields) if rebuilt.get(k) != fields.get(k))
        problems.append(f"{deal_id}: the event log does not rebuild the hash: {differ}")
    return problems


def loan_problems(deal_id: str, fields: Fields) -> list[str]:
    """An advance's figures against its repayments: outstanding is the principal less the
    principal repaid, each repayment split into interest and principal, repaid means settled."""
    loan = _json(fields, "loan")
    if not loan:
        return []
    paid = _json(fields, "repayments", [])
    problems = []
    principal_back = sum((Decimal(r["principal"]) for r in paid), Decimal(0))
    if Decimal(loan["outstanding"]) != Decimal(loan["principal"]) - principal_back:
        problems.append(f"{deal_id}: outstanding {loan['outstanding']} against its repayments")
    if Decimal(loan["principal_paid"]) != principal_back:
        problems.append(f"{deal_id}: principal paid {loan['principal_paid']}, "
                        f"repayments say {principal_back}")
    for r in paid:
        if Decimal(r["amount"]) != Decimal(r["interest"]) + Decimal(r["principal"]):
            problems.append(f"{deal_id}: repayment {r['reference']} not split into interest "
                            "and principal")
    refs = [r["reference"] for r in paid]
    if len(refs) != len(set(refs)):
        problems.append(f"{deal_id}: a repayment recorded twice: {refs}")
    if fields.get("state") == S.REPAID and (Decimal(loan["outstanding"]) != 0
                                            or Decimal(loan["accrued_interest"]) != 0):
        problems.append(f"{deal_id} repaid with {loan['outstanding']} outstanding and "
                        f"{loan['accrued_interest']} interest")
    return problems


# --- the buyer limits ---------------------------------------------------------------------------


def held_cents(fields: Fields) -> int:
    """What a deal holds on its buyer exposure: its invoice total until paid out, then the
    principal outstanding; nothing once ended (or before verification)."""
    if S(fields["state"]) not in RESERVING or not fields.get("exposure"):
        return 0
    loan = _json(fields, "loan")
    return to_cents(Decimal(loan["outstanding"]) if loan else Decimal(fields["invoice_total"]))


def expected_holdings(deals: dict[str, Fields]) -> dict[str, dict[str, str]]:
    """Each buyer exposure's reservations hash (deal -> cents) as the live deals make it."""
    holdings: dict[str, dict[str, str]] = {}
    for deal_id, fields in deals.items():
        cents = held_cents(fields)
        if cents:
            holdings.setdefault(fields["exposure"], {})[deal_id] = str(cents)
    return holdings


# --- the portfolio ------------------------------------------------------------------------------


def _banks_deals(deals: dict[str, Fields], bank: str) -> list[Fields]:
    return [f for f in deals.values() if f.get("bank_id") == bank]


def _deferred(fields: Fields) -> bool:
    return int(fields.get("deferral_count") or 0) > 0


def expected_portfolio(deals: dict[str, Fields], bank: str) -> tuple[dict[str, int],
                                                                      dict[str, int]]:
    """The bank's portfolio hash (counter -> cents or count) and its borrowers hash (exporter
    -> open advances) as its deals make them; counters at 0 are absent, as Redis keeps them."""
    counters: Counter = Counter()
    borrowers: Counter = Counter()
    ever: set[str] = set()
    for fields in _banks_deals(deals, bank):
        loan = _json(fields, "loan")
        if not loan:
            continue
        ever.add(fields["exporter_uscc"])
        state, ccy = S(fields["state"]), fields["currency"]
        decided = _json(fields, "claim_decision")
        if state == S.INDEMNIFIED and decided:
            counters[f"indemnity:{ccy}"] += to_cents(Decimal(decided["indemnity"]))
        if state == S.CLAIM_FILED:
            counters[f"claimed:{ccy}"] += to_cents(Decimal(_json(fields, "claim")["loss_amount"]))
        if state in OPEN and _deferred(fields):
            counters["deferred_deals"] += 1
        cents = to_cents(Decimal(loan["outstanding"])) if state in OPEN else 0
        if not cents:
            continue
        buyer = _json(fields, "buyer")
        counters[f"outstanding:{ccy}"] += cents
        counters[f"outstanding:{ccy}:buyer:{buyer['code']}"] += cents
        counters[f"outstanding:{ccy}:country:{buyer['country']}"] += cents
        if _deferred(fields):
            counters[f"deferred:{ccy}"] += cents
        if state == S.OVERDUE:
            counters[f"overdue:{ccy}"] += cents
        borrowers[fields["exporter_uscc"]] += 1
    if ever:
        counters["first_time_borrowers"] = len(ever)
    return ({k: v for k, v in counters.items() if v}, dict(borrowers))


def expected_arrears_index(deals: dict[str, Fields], bank: str) -> dict[str, int]:
    """The bank's arrears index: ``{ccy}|{due date}`` -> overdue cents and ``...|n`` -> how
    many advances, over its overdue advances."""
    index: Counter = Counter()
    for fields in deals.values():
        loan = _json(fields, "loan")
        if fields.get("bank_id") == bank and fields["state"] == S.OVERDUE and loan:
            due = f"{fields['currency']}|{loan['due_date']}"
            index[due] += to_cents(Decimal(loan["outstanding"]))
            index[f"{due}|n"] += 1
    return {k: v for k, v in index.items() if v}


# Arrears buckets by days past the due date, as banks report them (docs/lifecycle.md).
BUCKETS = (("1-30", 30), ("31-60", 60), ("61-90", 90), ("90+", None))


def expected_figures(deals: dict[str, Fields], bank: str,
                     today: date | None = None) -> dict[str, Any]:
    """``workflow.portfolio.figures`` for the bank as its deals make them, in Decimal (with
    the arrears buckets as of ``today`` when given)."""
    result: dict[str, Any] = {"outstanding": {}, "by_buyer": {}, "by_country": {},
                              "overdue": {}, "indemnity": {}, "deferred": {}, "claimed": {},
                              "borrowers": 0, "first_time_borrowers": 0, "deferred_deals": 0,
                              "claims": {"pending": 0, "paid": 0, "rejected": 0}}
    arrears: dict[str, dict[str, dict[str, Any]]] = {}
    borrowers, ever = set(), set()

    def add(group: dict, key: str, amount: Decimal) -> None:
        group[key] = group.get(key, Decimal("0.00")) + amount

    claims = {S.CLAIM_FILED: "pending", S.INDEMNIFIED: "paid", S.CLAIM_REJECTED: "rejected"}
    for fields in _banks_deals(deals, bank):
        state, ccy, buyer = S(fields["state"]), fields["currency"], _json(fields, "buyer")
        if state in claims:
            result["claims"][claims[state]] += 1
        loan = _json(fields, "loan")
        if not loan:
            continue
        ever.add(fields["exporter_uscc"])
        decided = _json(fields, "claim_decision")
        if state == S.INDEMNIFIED and decided and Decimal(decided["indemnity"]):
            add(result["indemnity"], ccy, Decimal(decided["indemnity"]))
        if state == S.CLAIM_FILED:
            add(result["claimed"], ccy, Decimal(_json(fields, "claim")["loss_amount"]))
        outstanding = Decimal(loan["outstanding"])
        if state in OPEN and _deferred(fields):
            result["deferred_deals"] += 1
        if state not in OPEN or not outstanding:
            continue
        borrowers.add(fields["exporter_uscc"])
        add(result["outstanding"], ccy, outstanding)
        add(result["by_buyer"].setdefault(ccy, {}), buyer["code"], outstanding)
        add(result["by_country"].setdefault(ccy, {}), buyer["country"], outstanding)
        if _deferred(fields):
            add(result["deferred"], ccy, outstanding)
        if state == S.OVERDUE:
            add(result["overdue"], ccy, outstanding)
            late = (today - date.fromisoformat(loan["due_date"])).days if today else 0
            bucket = next(name for name, most in BUCKETS if most is None or late <= most)
            by_bucket = arrears.setdefault(ccy, {
                name: {"amount": Decimal("0.00"), "advances": 0} for name, _ in BUCKETS})
            by_bucket[bucket]["amount"] += outstanding
            by_bucket[bucket]["advances"] += 1
    result["borrowers"], result["first_time_borrowers"] = len(borrowers), len(ever)
    if today is not None:
        result["arrears"] = arrears
    return result


# --- the schedules ------------------------------------------------------------------------------


def watched_for_arrears(fields: Fields) -> bool:
    """Whether the due-date schedule should hold the deal: an advance out whose next
    servicing event (overdue, the notice deadline, the claim deadline) is still to come."""
    state = S(fields["state"])
    return state == S.DISBURSED or (
        state == S.OVERDUE and "claim" not in _json(fields, "missed_deadlines", []))


def expected_schedule_members(deals: dict[str, Fields]) -> dict[str, set[str]]:
    """The deals the due-date and approval-lapse schedules should hold."""
    return {
        keys.due_dates(): {d for d, f in deals.items() if watched_for_arrears(f)},
        keys.approval_lapses(): {d for d, f in deals.items() if f["state"] == S.APPROVED},
    }


__all__ = [
    "OPEN",
    "RESERVING",
    "event_log_problems",
    "expected_arrears_index",
    "expected_figures",
    "expected_holdings",
    "expected_portfolio",
    "expected_schedule_members",
    "held_cents",
    "loan_problems",
    "read_deals",
    "watched_for_arrears",
]
