"""Invariants under real concurrency, on a real Redis: no over-commit, no double financing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from tests.conftest import DE_EXPOSURE, HAIXIN, make_application
from tests.support import watching_limit
from workflow import keys
from workflow.pipeline import DuplicateReceivable
from workflow.reference import Declaration, ReferenceData, store_reference
from workflow.states import State

pytestmark = pytest.mark.redis

DE_LIMIT = "LIM-HX-DE0001"  # 500,000.00 USD
LIMIT_CENTS = 50_000_000


def run_together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` on ``count`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_buyer_limit_is_never_over_committed(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    numbers = [f"INV-C-{i:03d}" for i in range(40)]
    store_reference(real_redis, ReferenceData(declarations=[
        Declaration("SIN-2026-0001", "DE-0001", n, date(2026, 11, 10), date(2026, 11, 12))
        for n in numbers]))
    amount = Decimal("30000.00")
    fits = int(Decimal("500000.00") // amount)  # 16
    assert fits == 16


    def submit_and_verify(i: int):
        app = make_application(number=numbers[i], amount=str(amount), requested_amount="20000.00")
        return wf.verify(wf.submit(app).deal.id)

    with watching_limit(real_redis, DE_EXPOSURE) as samples:
        deals = run_together(40, submit_and_verify)

    errors = [d for d in deals if isinstance(d, Exception)]
    assert errors == []
    states = Counter(d.state for d in deals)
    assert states == {State.PENDING_BANK: fits, State.REJECTED: 40 - fits}
    for deal in deals:
        if deal.state == State.REJECTED:
            assert deal.get("reasons") == ["LIMIT_INSUFFICIENT"]
    assert samples and all(total == held <= LIMIT_CENTS for total, held in samples)
    reservations = real_redis.hgetall(keys.exposure_reservations(DE_EXPOSURE))
    placed = {d.id for d in deals if d.state == State.PENDING_BANK}
    assert set(reservations) == placed
    assert sum(int(c) for c in reservations.values()) == fits * 3_000_000
    assert wf.store.reserved_cents(DE_EXPOSURE) == fits * 3_000_000
    # Every deal's stored hash is what its last step returned: no lost or torn write.
    for deal in deals:
        assert wf.store.get(deal.id).fields == deal.fields


def test_one_receivable_one_live_deal(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    results = run_together(20, lambda i: wf.submit(make_application(
        requested_amount=f"{50000 + i}.00")))
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1
    winner = won[0].deal.id
    assert len(lost) == 19
    assert all(isinstance(e, DuplicateReceivable) and e.details["deal_id"] == winner for e in lost)
    assert real_redis.zrange(keys.by_exporter(HAIXIN), 0, -1) == [winner]
    assert len(real_redis.keys("xb:deal:*")) == 2  # the deal and its event log


def test_one_idempotency_key_one_deal(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    results = run_together(20, lambda i: wf.submit(make_application(), "same-key"))
    assert not any(isinstance(r, Exception) for r in results)
    assert len({r.deal.id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19


def test_concurrent_verifies_of_one_deal_act_once(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    deal_id = wf.submit(make_application()).deal.id
    results = run_together(10, lambda i: wf.verify(deal_id))
    assert not any(isinstance(r, Exception) for r in results)
    final = wf.store.get(deal_id)
    assert final.state == State.PENDING_BANK and final.version == 4
    assert [e["type"] for e in wf.store.events(deal_id)] == [
        "submitted", "verification_started", "verified", "offered_to_bank"]
    assert wf.store.reserved_cents(DE_EXPOSURE) == 10_000_000
    assert real_redis.zcard(keys.deadlines()) == 1
