"""The insurer hears of its buyer limits' use: one outbox entry per change of an advance's
principal, written with the transition, reported in order, none dropped while it is away."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY
from tests.workflow.test_servicing import BOC, approved, payment, payout
from workflow import keys
from workflow.gateway import InsurerUnavailable
from workflow.limit_usage import DRAIN_BATCH, drain_usage


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


class Recorder:
    """An insurer that takes reports (and fails on the ``fail_at``-th one, if given)."""

    def __init__(self, fail_at: int | None = None):
        self.reports, self.fail_at = [], fail_at

    def report_limit_usage(self, usage) -> None:
        if self.fail_at is not None and len(self.reports) + 1 == self.fail_at:
            self.fail_at = None
            raise InsurerUnavailable("timeout")
        self.reports.append(usage)


def outbox(wf) -> list[dict]:
    return [json.loads(raw) for raw in wf.store.redis.lrange(keys.insurer_outbox(), 0, -1)]


def test_use_at_payout_less_as_principal_returns_none_once_repaid(wf):
    deal = approved(wf)
    assert outbox(wf) == []  # an approval uses nothing of the insurer's limit yet
    wf.disburse(deal.id, BOC, payout("80000.00"))
    wf.clock.advance(days=1)
    day = DEMO_TODAY + timedelta(days=1)
    wf.repay(deal.id, BOC, payment("30000.00", day, "R-1"))
    wf.repay(deal.id, BOC, payment("50000.00", day, "R-2"))  # discounted: no interest yet
    entries = outbox(wf)
    assert [e["amount"] for e in entries] == ["80000.00", "50000.00", "0.00"]
    assert {(e["deal_id"], e["policy_no"], e["buyer_code"], e["currency"]) for e in entries} == {
        (deal.id, "SIN-2026-0001", "DE-0001", "USD")
    }
    assert len({e["report_id"] for e in entries}) == 3
    insurer = Recorder()
    assert drain_usage(wf.store.redis, insurer) == 3
    assert [u.amount for u in insurer.reports] == [Decimal("80000.00"), Decimal("50000.00"), 0]
    assert outbox(wf) == []
    assert drain_usage(wf.store.redis, insurer) == 0


def test_nothing_is_dropped_while_the_insurer_is_away(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("80000.00"))
    wf.clock.advance(days=1)
    wf.repay(deal.id, BOC, payment("1000.00", DEMO_TODAY + timedelta(days=1), "R-1"))
    insurer = Recorder(fail_at=2)
    with pytest.raises(InsurerUnavailable):
        drain_usage(wf.store.redis, insurer)
    assert [e["amount"] for e in outbox(wf)] == ["79000.00"]  # the first reported, kept the rest
    assert drain_usage(wf.store.redis, insurer) == 1
    assert [u.amount for u in insurer.reports] == [Decimal("80000.00"), Decimal("79000.00")]


def test_one_drain_at_a_time(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("80000.00"))
    wf.store.redis.set(keys.insurer_outbox() + ":lock", "1")  # another drain is running
    assert drain_usage(wf.store.redis, Recorder()) == 0
    assert len(outbox(wf)) == 1


def test_a_drain_takes_a_batch_and_leaves_the_rest_in_order(wf):
    entry = {"deal_id": "d", "policy_no": "P", "buyer_code": "B", "currency": "USD"}
    for n in range(DRAIN_BATCH + 3):
        wf.store.redis.rpush(
            keys.insurer_outbox(), json.dumps({**entry, "report_id": f"d:{n}", "amount": "1.00"})
        )
    insurer = Recorder()
    assert drain_usage(wf.store.redis, insurer) == DRAIN_BATCH
    left = [f"d:{n}" for n in range(DRAIN_BATCH, DRAIN_BATCH + 3)]
    assert [e["report_id"] for e in outbox(wf)] == left
