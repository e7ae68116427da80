"""Found in review: the arrears sweep moves a disbursed advance overdue on the strength of its
schedule entry alone; a deferral landing between the sweep's read of the schedule and its read
of the deal makes it put an advance overdue before its new due date (overdue_since in the
future, the insurer's deadlines counted from a date not yet passed)."""

from __future__ import annotations

from datetime import timedelta

from tests.workflow.test_arrears import disbursed, to_day
from tests.workflow.test_servicing import BOC, DUE
from workflow import keys
from workflow.business_days import due_score
from workflow.pipeline import Deferral
from workflow.states import State


def test_a_deferral_between_the_sweeps_two_reads_is_not_made_overdue(any_redis, make_workflow,
                                                                    monkeypatch):
    wf = make_workflow(any_redis)
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=1))  # past due, the sweep has not run yet
    new_due = DUE + timedelta(days=30)
    real_due = wf.store.due
    landed = []

    def due_then_deferral(index_key, now, limit=500):
        ids = real_due(index_key, now, limit)
        if not landed:  # the bank's deferral lands just after the sweep read its schedule
            landed.append(wf.defer(deal.id, BOC, Deferral("wang", new_due, "DEF-1")))
        return ids

    monkeypatch.setattr(wf.store, "due", due_then_deferral)
    assert wf.sweep_arrears() == []
    now = wf.store.get(deal.id)
    assert now.state == State.DISBURSED, now.fields.get("overdue_since")
    assert not now.fields.get("overdue_since")
    # Still scheduled for the day after its new due date.
    assert any_redis.zscore(keys.due_dates(), deal.id) == due_score(new_due)
