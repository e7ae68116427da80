"""Review: a deferral racing the arrears sweep, repayments and the notice on real Redis: the
deal's state, its due-date schedule, the portfolio counters and the arrears index always
agree with a recomputation from the deal, and its log rebuilds it."""

from __future__ import annotations

import contextlib
import threading
from datetime import date, timedelta
from decimal import Decimal

from tests.workflow.test_arrears import to_day
from tests.workflow.test_servicing import BOC, DUE, approved, payment, payout
from workflow import keys
from workflow.business_days import due_score
from workflow.deal import rebuild
from workflow.money import to_cents
from workflow.pipeline import Deferral, WorkflowError
from workflow.portfolio import figures
from workflow.states import State


def _race(wf, deal_id: str) -> None:
    day = DUE + timedelta(days=1)
    steps = [
        lambda: wf.defer(deal_id, BOC, Deferral("wang", DUE + timedelta(days=30), "D-1")),
        lambda: wf.defer(deal_id, BOC, Deferral("wang", DUE + timedelta(days=30), "D-1")),
        wf.sweep_arrears,
        wf.sweep_arrears,
        lambda: wf.repay(deal_id, BOC, payment("1000.00", day, "R-1")),
        lambda: wf.repay(deal_id, BOC, payment("2000.00", day, "R-2")),
        lambda: wf.file_notice(deal_id, BOC, "wang"),
    ]
    barrier = threading.Barrier(len(steps))

    def run(step) -> None:
        barrier.wait()
        # Refused whole (not overdue yet, changing too fast): nothing written.
        with contextlib.suppress(WorkflowError):
            step()

    threads = [threading.Thread(target=run, args=(s,)) for s in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_a_deferral_racing_the_sweep_and_repayments_keeps_every_index_true(real_redis,
                                                                         make_workflow):
    for _ in range(12):
        real_redis.flushdb()
        wf = make_workflow(real_redis)
        deal = approved(wf)
        wf.disburse(deal.id, BOC, payout())
        to_day(wf, DUE + timedelta(days=1))
        _race(wf, deal.id)
        now = wf.store.get(deal.id)
        loan = now.get("loan")
        due = loan["due_date"]
        assert rebuild(wf.store.events(deal.id)) == {
            k: v for k, v in now.fields.items()}, "the log rebuilds the deal"
        score = real_redis.zscore(keys.due_dates(), deal.id)
        if now.state == State.DISBURSED:
            assert date.fromisoformat(due) > wf.today()
            assert score == due_score(date.fromisoformat(due))
            assert not now.fields.get("overdue_since")
        else:
            assert now.state == State.OVERDUE and due == DUE.isoformat()
            assert score == due_score(DUE + timedelta(days=60))
        book = figures(real_redis, BOC, today=wf.today())
        outstanding = Decimal(loan["outstanding"])
        assert book["outstanding"] == {"USD": outstanding}
        overdue = {"USD": outstanding} if now.state == State.OVERDUE else {}
        assert book["overdue"] == overdue
        arrears = real_redis.hgetall(keys.portfolio_arrears(BOC))
        assert arrears == ({f"USD|{due}": str(to_cents(outstanding)), f"USD|{due}|n": "1"}
                           if now.state == State.OVERDUE else {})
        deferred = int(now.fields.get("deferral_count") or 0) > 0
        assert book["deferred"] == ({"USD": outstanding} if deferred else {})
        assert book["deferred_deals"] == (1 if deferred else 0)
