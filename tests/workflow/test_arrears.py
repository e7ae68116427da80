"""Arrears: overdue after the due date and the policy's grace, then the insurer's deadlines."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY
from tests.workflow.test_servicing import BOC, DUE, approved, payment, payout
from workflow import keys
from workflow.business_days import arrears_bucket, days_past_due
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def policy_terms(wf, policy_no: str, **fields) -> None:
    record = json.loads(wf.store.redis.get(keys.policy(policy_no)))
    record.update(fields)
    wf.store.redis.set(keys.policy(policy_no), json.dumps(record))


def to_day(wf, day: date, hour: int = 1) -> None:
    """Move the clock to ``day`` at ``hour`` o'clock UTC (09:00 in Shanghai by default)."""
    now = wf.clock()
    target = now.replace(year=day.year, month=day.month, day=day.day, hour=hour, minute=0)
    wf.clock.advance(seconds=(target - now).total_seconds())


def disbursed(wf):
    deal = approved(wf)
    return wf.disburse(deal.id, BOC, payout())


def test_buckets():
    assert [arrears_bucket(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        None, "1-30", "1-30", "31-60", "31-60", "61-90", "61-90", "90+", "90+"]
    assert days_past_due(date(2027, 1, 9), date(2027, 1, 8)) == 0
    assert days_past_due(date(2027, 1, 9), date(2027, 2, 9)) == 31


def test_unpaid_on_the_due_date_it_goes_overdue_the_next_day_once(wf):
    deal = disbursed(wf)
    to_day(wf, DUE, hour=15)  # 23:00 in Shanghai: still the due date
    assert wf.sweep_arrears() == []
    to_day(wf, DUE + timedelta(days=1))
    assert wf.sweep_arrears() == [deal.id]
    assert wf.sweep_arrears() == []  # a second sweep does nothing twice
    late = wf.store.get(deal.id)
    assert late.state == State.OVERDUE
    assert late.fields["overdue_since"] == (DUE + timedelta(days=1)).isoformat()
    assert late.fields["notice_deadline"] == (DUE + timedelta(days=60)).isoformat()
    assert late.fields["claim_deadline"] == (DUE + timedelta(days=120)).isoformat()
    assert [e["type"] for e in wf.store.events(deal.id)].count("overdue") == 1


def test_the_policys_grace_days_come_first(wf):
    policy_terms(wf, "SIN-2026-0001", grace_days=5)
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=5))
    assert wf.sweep_arrears() == []
    to_day(wf, DUE + timedelta(days=6))
    assert wf.sweep_arrears() == [deal.id]


def test_paid_late_in_parts_and_then_in_full(wf):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=10))
    wf.sweep_arrears()
    day = DUE + timedelta(days=10)
    part = wf.repay(deal.id, BOC, payment("30000.00", day, "R1"))
    assert part.state == State.OVERDUE
    owed = Decimal(part.get("loan")["outstanding"]) + Decimal(part.get("loan")["accrued_interest"])
    done = wf.repay(deal.id, BOC, payment(str(owed), day, "R2"))
    assert done.state == State.REPAID
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) is None
    to_day(wf, DUE + timedelta(days=200))
    assert wf.sweep_arrears() == []


def test_missed_notice_then_missed_claim_are_recorded_on_the_deal(wf):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=1))
    wf.sweep_arrears()
    to_day(wf, DUE + timedelta(days=60))
    assert wf.sweep_arrears() == []  # the notice may still go out on its last day
    to_day(wf, DUE + timedelta(days=61))
    assert wf.sweep_arrears() == [deal.id]
    assert wf.store.get(deal.id).get("missed_deadlines") == ["notice"]
    to_day(wf, DUE + timedelta(days=121))
    assert wf.sweep_arrears() == [deal.id]
    late = wf.store.get(deal.id)
    assert late.get("missed_deadlines") == ["notice", "claim"]
    assert late.state == State.OVERDUE
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) is None
    types = [e["type"] for e in wf.store.events(deal.id)]
    assert types.count("notice_deadline_missed") == types.count("claim_deadline_missed") == 1


def test_a_repayment_and_the_sweep_at_once_do_not_lose_either(wf, monkeypatch):
    """The sweep read the deal before the repayment landed: its move is refused, the
    repayment stands, and the next sweep still finds the deal overdue."""
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=1))
    stale = wf.store.get(deal.id)
    wf.repay(deal.id, BOC, payment("1000.00", DUE + timedelta(days=1), "R1"))
    real_get = wf.store.get

    def stale_once(deal_id):
        monkeypatch.setattr(wf.store, "get", real_get)
        return stale

    monkeypatch.setattr(wf.store, "get", stale_once)
    assert wf.sweep_arrears() == []
    assert wf.sweep_arrears() == [deal.id]
    late = wf.store.get(deal.id)
    assert late.state == State.OVERDUE and len(late.get("repayments")) == 1
    assert DEMO_TODAY < DUE


def test_business_days_are_shanghai_days(wf):
    """From 00:00 to 08:00 in Shanghai the UTC date is still yesterday: a repayment dated
    today (Shanghai) is taken, and the due date ends at midnight Shanghai."""
    deal = disbursed(wf)
    to_day(wf, DUE, hour=16)  # 00:00 the day after the due date in Shanghai; UTC: still DUE
    assert wf.today() == DUE + timedelta(days=1)
    assert wf.sweep_arrears() == [deal.id]
    paid = wf.repay(deal.id, BOC, payment("1000.00", DUE + timedelta(days=1), "R1"))
    assert paid.get("repayments")[0]["value_date"] == (DUE + timedelta(days=1)).isoformat()


def test_one_sweep_clears_a_backlog_batch_after_batch(wf, monkeypatch):
    from workflow import steps

    monkeypatch.setattr(steps, "SWEEP_BATCH", 2)
    deal = disbursed(wf)
    for n in range(5):  # entries whose deals are gone: each is pruned as the sweep meets it
        wf.store.redis.zadd(keys.due_dates(), {f"gone-{n}": 1.0})
    to_day(wf, DUE + timedelta(days=1))
    assert wf.sweep_arrears() == [deal.id]
    assert wf.store.redis.zrangebyscore(keys.due_dates(), "-inf", 2.0) == []
