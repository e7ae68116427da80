"""The Celery tasks: idempotent under redelivery, bounded insurer retries, the beat sweeps."""

from __future__ import annotations

from typing import Any

import pytest

from tasks import pipeline as tasks
from tests.conftest import DE_EXPOSURE, make_application
from workflow import keys
from workflow.gateway import InsurerUnavailable
from workflow.states import State


@pytest.fixture
def flow(app) -> Any:
    return app.extensions["xinbao"]


def committed(flow, **overrides):
    """A deal committed the way the API commits it, with no task published yet."""
    return flow.submit(make_application(**overrides)).deal


def snapshot(flow, deal_id: str) -> tuple[str, int, int]:
    deal = flow.store.get(deal_id)
    return str(deal.state), deal.version, len(flow.store.events(deal_id))


def test_verify_task_takes_a_deal_to_its_first_bank(app, flow):
    deal = committed(flow)
    result = tasks.verify_deal.apply(args=[deal.id])
    assert result.get() == "pending_bank"
    assert flow.store.get(deal.id).bank_id == "BOC-NB"


def test_redelivered_verify_task_changes_nothing_twice(app, flow):
    deal = committed(flow)
    tasks.verify_deal.apply(args=[deal.id])
    before = snapshot(flow, deal.id)
    for _ in range(3):  # a redelivered message, a sweeper re-dispatch, a duplicate publish
        tasks.verify_deal.apply(args=[deal.id])
        tasks.route_deal.apply(args=[deal.id])
    assert snapshot(flow, deal.id) == before
    assert flow.store.reserved_cents(DE_EXPOSURE) == 100000_00


def test_verify_task_of_unknown_deal_is_a_no_op(app):
    assert tasks.verify_deal.apply(args=["no-such-deal"]).get() is None


class FlakyInsurer:
    """An insurer that is unreachable until told otherwise."""

    def __init__(self, real: Any):
        self.real, self.down, self.calls = real, True, 0

    def cover_facts(self, application):
        self.calls += 1
        if self.down:
            raise InsurerUnavailable("connection refused")
        return self.real.cover_facts(application)


def test_unreachable_insurer_puts_the_deal_on_hold_and_it_resumes_by_itself(app, flow, clock):
    flaky = FlakyInsurer(flow.insurer)
    flow.insurer = flaky
    deal = committed(flow)
    tasks.verify_deal.apply(args=[deal.id])
    held = flow.store.get(deal.id)
    assert held.state == State.ON_HOLD
    assert held.fields["hold_reason"] == "INSURER_UNAVAILABLE"
    # bounded: the first try plus the configured retries, then on hold
    assert flaky.calls == flow.settings.insurer_retry_limit + 1
    # Before the hold period has passed the sweeper leaves it alone ...
    assert tasks.sweep_stranded.apply().get() == 0
    # ... and once it has, and the insurer is back, the deal goes on without anyone's help.
    flaky.down = False
    clock.advance(seconds=flow.settings.hold_retry_seconds + 1)
    assert tasks.sweep_stranded.apply().get() == 1
    assert flow.store.get(deal.id).state == State.PENDING_BANK


def test_sweeper_redispatches_a_deal_whose_task_was_lost(app, flow, clock):
    deal = committed(flow)
    assert tasks.sweep_stranded.apply().get() == 0  # not overdue yet
    clock.advance(seconds=flow.settings.stale_after_seconds + 1)
    assert tasks.sweep_stranded.apply().get() == 1
    recovered = flow.store.get(deal.id)
    assert recovered.state == State.PENDING_BANK
    assert flow.store.redis.zscore(keys.by_state("submitted"), deal.id) is None


def test_sweeper_finishes_a_deal_left_in_routing(app, flow, clock):
    deal = committed(flow)
    tasks.verify_deal.apply(args=[deal.id])
    declined = flow.store.get(deal.id)
    from workflow.pipeline import Decision

    flow.decide(deal.id, "BOC-NB", Decision(approve=False, officer="o", reason="no"))
    assert flow.store.get(deal.id).state == State.ROUTING  # the route task was "lost"
    clock.advance(seconds=flow.settings.stale_after_seconds + 1)
    tasks.sweep_stranded.apply()
    rerouted = flow.store.get(deal.id)
    assert rerouted.state == State.PENDING_BANK and rerouted.bank_id == "ICBC-NB"
    assert declined.version < rerouted.version


def test_deadline_sweep_sends_the_deal_to_the_next_bank(app, flow, clock):
    deal = committed(flow)
    tasks.verify_deal.apply(args=[deal.id])
    assert tasks.sweep_deadlines.apply().get() == 0
    clock.advance(hours=24, seconds=1)  # BOC-NB has 24 decision hours
    assert tasks.sweep_deadlines.apply().get() == 1
    moved = flow.store.get(deal.id)
    assert moved.state == State.PENDING_BANK and moved.bank_id == "ICBC-NB"
    assert moved.offered_banks == ["BOC-NB", "ICBC-NB"]
    assert flow.store.redis.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert tasks.sweep_deadlines.apply().get() == 0  # nothing twice


def test_drain_verifies_every_submitted_deal_once(app, flow):
    deals = [committed(flow, number=f"INV-HX-10{n:02d}", amount="24000.00",
                       requested_amount="20000.00") for n in range(1, 21)]
    assert flow.store.redis.llen(keys.ready()) == 20
    assert tasks.drain_ready.apply().get() >= 1
    assert flow.store.redis.llen(keys.ready()) == 0
    assert flow.store.redis.get(keys.drain_scheduled()) is None
    states = {str(flow.store.get(d.id).state) for d in deals}
    assert states == {"pending_bank"}
    before = [snapshot(flow, d.id) for d in deals]
    flow.store.redis.rpush(keys.ready(), *[d.id for d in deals])  # duplicated entries
    tasks.drain_ready.apply()
    assert [snapshot(flow, d.id) for d in deals] == before


def test_drain_hands_an_unreachable_insurer_to_the_retrying_task(app, flow):
    flaky = FlakyInsurer(flow.insurer)
    flow.insurer = flaky
    deal = committed(flow)
    tasks.drain_ready.apply()
    assert flow.store.get(deal.id).state == State.ON_HOLD  # retried, then parked
    assert flaky.calls == 1 + flow.settings.insurer_retry_limit + 1


def test_a_submission_sets_the_drain_flag_in_its_own_step_once(flow):
    first = flow.submit(make_application(number="INV-DRAIN-1"))
    assert first.drain_due  # this submission queued the flag: its caller publishes the drain
    ttl = flow.store.redis.ttl(keys.drain_scheduled())
    assert 0 < ttl <= 10  # a lost drain message only delays the next one
    second = flow.submit(make_application(number="INV-DRAIN-2"))
    assert not second.drain_due  # one is queued already: no second message
    flow.store.redis.delete(keys.drain_scheduled())  # what a starting drain does
    assert flow.submit(make_application(number="INV-DRAIN-3")).drain_due


def test_a_replayed_or_refused_submission_queues_no_drain(flow):
    application = make_application(number="INV-DRAIN-4")
    assert flow.submit(application, "key-1").drain_due
    flow.store.redis.delete(keys.drain_scheduled())
    replay = flow.submit(application, "key-1")
    assert replay.replayed and not replay.drain_due
    assert flow.store.redis.get(keys.drain_scheduled()) is None  # the refused script wrote nothing


def test_a_failed_drain_publish_leaves_no_flag_behind(app, flow, monkeypatch):
    def broker_down(*_args, **_kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.drain_ready, "delay", broker_down)
    assert flow.submit(make_application()).drain_due
    with app.app_context():
        tasks.publish_drain()  # logs, does not raise
    assert flow.store.redis.get(keys.drain_scheduled()) is None
    with app.app_context():
        tasks.schedule_drain()  # the drain's own path: sets the flag, fails, clears it
    assert flow.store.redis.get(keys.drain_scheduled()) is None


def test_failed_publish_does_not_fail_the_caller(app, flow, monkeypatch):
    def broker_down(*_args, **_kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.verify_deal, "delay", broker_down)
    deal = committed(flow)
    tasks.dispatch_verify(deal.id)  # logs, does not raise
    assert flow.store.get(deal.id).state == State.SUBMITTED


def test_the_lapse_sweep_cancels_an_approval_never_disbursed(app, flow, clock):
    from workflow.pipeline import Decision

    deal = committed(flow)
    tasks.verify_deal.apply(args=[deal.id])
    flow.decide(deal.id, "BOC-NB", Decision(True, "wang"))
    assert tasks.lapse_approvals.apply().get() == 0
    clock.advance(days=flow.settings.approval_lapse_days, seconds=1)
    assert tasks.lapse_approvals.apply().get() == 1
    assert flow.store.get(deal.id).state == State.CANCELLED
