"""A drain's batch against what can happen between its read and its commit, and against a
pipeline that fails part way: every deal ends where verify() alone would take it, once."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import DE_EXPOSURE, HAIXIN, make_application
from tests.recompute import event_log_problems, read_deals
from workflow import keys
from workflow.feed import read_bank_feed
from workflow.pipeline import Decision
from workflow.states import State
from workflow.visibility import as_seen_by_bank

OFFERED = ["submitted", "verification_started", "verified", "offered_to_bank"]


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


@pytest.fixture
def real_wf(real_redis, make_workflow):
    return make_workflow(real_redis)


def two_deals(wf):
    return [wf.submit(make_application(number=n, amount="100000.00")).deal
            for n in ("INV-HX-1001", "INV-HX-1002")]


def drained(wf, entries):
    """What tasks.pipeline.drain_ready does with a batch: verify_many, then verify() alone
    for what it leaves (all of it if it raised)."""
    try:
        left = wf.verify_many(entries)
    except Exception:  # noqa: BLE001 - as the drain: each deal on its own
        left = entries
    for deal_id, _ in left:
        wf.verify(deal_id)


def assert_logs_chain(wf, *ids):
    deals, logs = read_deals(wf.store.redis, list(ids))
    for deal_id in ids:
        assert not event_log_problems(deal_id, deals[deal_id], logs[deal_id])


def test_scripts_gone_after_a_restart_leave_the_batch_to_verify_alone(real_wf):
    # A restarted Redis has no scripts: every EVALSHA of the pipeline is refused (NOSCRIPT),
    # nothing is written, verify() loads the script, and the next batch runs in one pipeline.
    deals = two_deals(real_wf)
    real_wf.store.redis.script_flush()
    entries = [(d.id, None) for d in deals]
    assert sorted(real_wf.verify_many(entries)) == sorted(entries)
    assert [real_wf.store.get(d.id).version for d in deals] == [1, 1]
    for deal_id, _ in entries:
        real_wf.verify(deal_id)
    assert [e["type"] for e in real_wf.store.events(deals[0].id)] == OFFERED
    assert_logs_chain(real_wf, *(d.id for d in deals))
    third = real_wf.submit(make_application(number="INV-HX-1003")).deal
    assert real_wf.verify_many([(third.id, None)]) == []


def test_a_reply_lost_after_the_pipeline_ran_changes_nothing_twice(real_wf, monkeypatch):
    deals = two_deals(real_wf)
    real_execute = redis.client.Pipeline.execute

    def runs_then_drops(self, raise_on_error=True):
        scripts = any(command[0][0] == "EVALSHA" for command in self.command_stack)
        answer = real_execute(self, raise_on_error)
        if scripts:
            monkeypatch.undo()
            raise redis.exceptions.ConnectionError("connection lost before the replies")
        return answer

    monkeypatch.setattr(redis.client.Pipeline, "execute", runs_then_drops)
    drained(real_wf, [(d.id, None) for d in deals])
    for deal in deals:
        assert [e["type"] for e in real_wf.store.events(deal.id)] == OFFERED
    assert real_wf.store.reserved_cents(DE_EXPOSURE) == 2 * 100_000_00
    assert_logs_chain(real_wf, *(d.id for d in deals))


def test_a_withdrawal_between_the_batch_read_and_its_commit_wins(wf):
    deal = wf.submit(make_application()).deal
    store = wf.store
    real = type(store).get_many_with.__get__(store)

    def read_then_withdraw(ids, key):
        found = real(ids, key)
        wf.withdraw(deal.id, HAIXIN)
        return found

    store.get_many_with = read_then_withdraw
    assert wf.verify_many([(deal.id, "req-1")]) == [(deal.id, "req-1")]
    assert wf.verify(deal.id).state == State.WITHDRAWN
    assert store.reserved_cents(DE_EXPOSURE) == 0
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") is None
    assert [e["type"] for e in store.events(deal.id)] == ["submitted", "withdrawn"]


def test_a_deal_twice_in_a_batch_is_verified_once(wf):
    deal = wf.submit(make_application()).deal
    assert wf.verify_many([(deal.id, "a"), (deal.id, "b")]) == [(deal.id, "b")]
    assert [e["type"] for e in wf.store.events(deal.id)] == OFFERED
    assert wf.store.reserved_cents(DE_EXPOSURE) == 100_000_00


def test_observers_and_counters_see_each_event_of_each_chain(wf):
    seen = []
    wf.store.observers.append(
        lambda was, now, event: seen.append((was.state, now.state, now.version, event["v"])))
    good = wf.submit(make_application()).deal
    bad = wf.submit(make_application(number="INV-HX-1002", policy_no="SIN-2099-9999")).deal
    seen.clear()
    assert wf.verify_many([(good.id, None), (bad.id, None)]) == []
    assert seen == [
        ("submitted", "verifying", 2, 2),
        ("verifying", "routing", 3, 3),
        ("routing", "pending_bank", 4, 4),
        ("submitted", "verifying", 2, 2),
        ("verifying", "rejected", 3, 3),
    ]
    assert wf.store.redis.hgetall(keys.deals_ended()) == {"rejected": "1"}


def test_each_bank_reads_in_its_feed_what_the_deal_api_shows_it(wf):
    deal = wf.submit(make_application()).deal
    assert wf.verify_many([(deal.id, None)]) == []
    first = wf.store.get(deal.id).bank_id
    wf.decide(deal.id, first, Decision(False, "officer-1", reason="no appetite"))
    deal = wf.route(deal.id)
    assert deal.bank_id not in (None, first)
    events = wf.store.events(deal.id)
    for bank in (first, deal.bank_id):
        feed = [entry.event for entry in read_bank_feed(wf.store.redis, bank, None, 1000)]
        assert feed == as_seen_by_bank(deal, events, bank)[1], bank
