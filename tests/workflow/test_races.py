"""Stale reads and overlapping sweeps: the compare-and-set really depends on the version.

Each test replays one interleaving in which an actor acts on a read that has gone stale while
the deal returned to the same state (ABA), or two sweeps act on one deal at once.
"""

from __future__ import annotations

import threading

import pytest

from tests.conftest import DEMO_NOW, make_application
from workflow import keys
from workflow.deal import Deal, application_fields
from workflow.pipeline import Decision, WrongState
from workflow.states import State
from workflow.store import DealStore, Ops, VersionConflict

S = State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def placed(wf, number: str = "INV-HX-1001") -> Deal:
    """A deal pending at BOC-NB (the demo's first bank for Haixin's default application)."""
    deal = wf.verify(wf.submit(make_application(number=number)).deal.id)
    assert deal.state == S.PENDING_BANK and deal.bank_id == "BOC-NB"
    return deal


def everything(wf, deal_id: str) -> dict:
    r = wf.store.redis
    return {
        "deal": r.hgetall(keys.deal(deal_id)),
        "events": r.lrange(keys.events(deal_id), 0, -1),
        "deadline": r.zscore(keys.deadlines(), deal_id),
        "queues": [r.zscore(keys.bank_queue(b), deal_id) for b in ("BOC-NB", "ICBC-NB")],
    }


# --- the store -------------------------------------------------------------------------------


def test_store_refuses_a_stale_write_after_the_deal_returned_to_the_same_state(any_redis):
    store = DealStore(any_redis)
    deal = store.create("d1", application_fields(make_application()), actor="t", ops=Ops(),
                        now=DEMO_NOW)
    for state in (S.VERIFYING, S.ROUTING):
        deal = store.transition(deal, state, actor="t", event=str(state), now=DEMO_NOW)
    at_a = store.transition(deal, S.PENDING_BANK, actor="t", event="offered",
                            changes={"bank_id": "A"}, now=DEMO_NOW)
    back = store.transition(at_a, S.ROUTING, actor="t", event="declined",
                            changes={"bank_id": None}, now=DEMO_NOW)
    at_b = store.transition(back, S.PENDING_BANK, actor="t", event="offered",
                            changes={"bank_id": "B"}, now=DEMO_NOW)
    assert at_a.state == at_b.state == S.PENDING_BANK  # the same state, two versions apart
    before = (any_redis.hgetall(keys.deal("d1")), any_redis.lrange(keys.events("d1"), 0, -1))
    with pytest.raises(VersionConflict) as caught:
        store.transition(at_a, S.APPROVED, actor="bank:A", event="approved", now=DEMO_NOW)
    assert caught.value.version == at_b.version and caught.value.state == S.PENDING_BANK
    assert (any_redis.hgetall(keys.deal("d1")),
            any_redis.lrange(keys.events("d1"), 0, -1)) == before
    # A same-state write (a field update without a move) is version-checked too.
    with pytest.raises(VersionConflict):
        store.transition(at_a, S.PENDING_BANK, actor="t", event="touched", now=DEMO_NOW)


def test_conditional_index_changes_follow_the_version(any_redis):
    store = DealStore(any_redis)
    store.create("d1", application_fields(make_application()), actor="t",
                 ops=Ops().zadd("xb:idx:t", 100, "d1"), now=DEMO_NOW)
    assert not store.prune("xb:idx:t", "d1", seen_version=7)  # a stale read changes nothing
    assert any_redis.zscore("xb:idx:t", "d1") == 100
    assert not store.defer("xb:idx:t", "d1", 7, DEMO_NOW)
    assert any_redis.zscore("xb:idx:t", "d1") == 100
    assert store.prune("xb:idx:t", "d1", seen_version=1)
    assert any_redis.zscore("xb:idx:t", "d1") is None


# --- a bank's decision on a stale read -----------------------------------------------------------


def test_a_bank_deciding_on_a_stale_page_cannot_take_back_a_deal_now_at_another_bank(
    wf, monkeypatch
):
    deal = placed(wf)
    real_get = wf.store.get

    def read_then_others_act(deal_id):
        seen = real_get(deal_id)  # the BOC officer's page, loaded while BOC holds the deal
        monkeypatch.setattr(wf.store, "get", real_get)
        # Meanwhile a colleague at BOC declines and the deal goes to ICBC: pending_bank again.
        wf.decide(deal_id, "BOC-NB", Decision(False, "colleague", reason="no appetite"))
        assert wf.route(deal_id).bank_id == "ICBC-NB"
        return seen

    monkeypatch.setattr(wf.store, "get", read_then_others_act)
    with pytest.raises(WrongState):
        wf.decide(deal.id, "BOC-NB", Decision(True, "stale-officer"))
    now = wf.store.get(deal.id)
    assert now.state == S.PENDING_BANK and now.bank_id == "ICBC-NB"
    assert [e["type"] for e in wf.store.events(deal.id)][-2:] == ["declined", "offered_to_bank"]
    state = everything(wf, deal.id)
    assert state["deadline"] is not None and state["queues"] == [None, state["deadline"]]


# --- the deadline sweep ----------------------------------------------------------------------


def test_a_stale_deadline_sweep_does_not_expire_the_next_banks_offer(wf, monkeypatch):
    deal = placed(wf)
    wf.clock.advance(hours=25)  # BOC's 24 h have passed
    real_get = wf.store.get

    def read_then_others_act(deal_id):
        seen = real_get(deal_id)  # this sweep reads: pending at BOC, deadline passed
        monkeypatch.setattr(wf.store, "get", real_get)
        assert wf.expire_deadlines() == [deal_id]  # another sweep acts first...
        assert wf.route(deal_id).bank_id == "ICBC-NB"  # ...and ICBC is offered the deal
        return seen

    monkeypatch.setattr(wf.store, "get", read_then_others_act)
    assert wf.expire_deadlines() == []  # the stale sweep gets a conflict and does nothing
    now = wf.store.get(deal.id)
    assert now.state == S.PENDING_BANK and now.bank_id == "ICBC-NB"
    state = everything(wf, deal.id)
    assert state["deadline"] is not None and state["queues"][1] is not None
    types = [e["type"] for e in wf.store.events(deal.id)]
    assert types.count("deadline_missed") == 1


def test_a_sweep_that_read_a_moved_deal_leaves_the_new_deadline_in_place(wf, monkeypatch):
    """Sweep B reads the due deadlines; sweep A re-routes the deal; it is offered to the next
    bank with a new deadline; B must not delete that new entry (it once did, with a ZREM)."""
    deal = placed(wf)
    wf.clock.advance(hours=25)
    stale_due = wf.store.due(keys.deadlines(), wf.clock())  # B reads the due entries
    assert wf.expire_deadlines() == [deal.id]  # A re-routes
    real_get = wf.store.get

    def read_then_route(deal_id):
        seen = real_get(deal_id)  # B sees the deal in routing: a "leftover" entry to clean
        monkeypatch.setattr(wf.store, "get", real_get)
        assert wf.route(deal_id).bank_id == "ICBC-NB"  # offered with a new deadline
        return seen

    monkeypatch.setattr(wf.store, "due", lambda *_a, **_k: list(stale_due))
    monkeypatch.setattr(wf.store, "get", read_then_route)
    assert wf.expire_deadlines() == []
    monkeypatch.undo()
    assert wf.store.redis.zscore(keys.deadlines(), deal.id) is not None
    # ICBC's deadline is enforced: when it passes, the deal moves on again.
    wf.clock.advance(hours=25)
    assert wf.expire_deadlines() == [deal.id]
    assert wf.store.get(deal.id).state == S.ROUTING
    with pytest.raises(WrongState):
        wf.decide(deal.id, "ICBC-NB", Decision(True, "late"))


def test_overlapping_deadline_sweeps_act_once(wf, monkeypatch):
    deal = placed(wf)
    wf.clock.advance(hours=25)
    real_get = wf.store.get
    results = []

    def read_then_other_sweep(deal_id):
        seen = real_get(deal_id)
        monkeypatch.setattr(wf.store, "get", real_get)
        results.append(wf.expire_deadlines())  # the other sweep, between read and write
        return seen

    monkeypatch.setattr(wf.store, "get", read_then_other_sweep)
    results.append(wf.expire_deadlines())
    assert results == [[deal.id], []]
    assert [e["type"] for e in wf.store.events(deal.id)].count("deadline_missed") == 1


# --- the stranded-deal sweep -------------------------------------------------------------------


def test_a_stale_stranded_sweep_does_not_touch_a_deal_that_moved(wf, monkeypatch):
    waiting = wf.submit(make_application()).deal
    wf.clock.advance(seconds=61)
    real_versions = wf.store.versions

    def read_then_verify(deal_ids):
        seen = real_versions(deal_ids)
        wf.verify(waiting.id)  # a worker picks it up between the sweep's read and its claim
        return seen

    monkeypatch.setattr(wf.store, "versions", read_then_verify)
    assert wf.stranded() == []
    monkeypatch.undo()
    assert wf.store.get(waiting.id).state == S.PENDING_BANK


@pytest.mark.redis
def test_concurrent_stranded_sweeps_claim_each_deal_once(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    ids = {wf.submit(make_application(number=f"INV-HX-{1001 + i}")).deal.id for i in range(12)}
    wf.clock.advance(seconds=61)
    claimed: list[tuple[str, State]] = []
    barrier = threading.Barrier(6)
    lock = threading.Lock()

    def sweep() -> None:
        barrier.wait()
        found = wf.stranded()
        with lock:
            claimed.extend(found)

    threads = [threading.Thread(target=sweep) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d for d, _ in claimed) == sorted(ids)  # every deal once, none twice
