"""The deal store: atomic compare-and-set transitions with their event, reservations and locks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_NOW, make_application
from workflow import keys
from workflow.deal import Deal, application_fields, iso, rebuild
from workflow.pipeline import Decision
from workflow.states import State
from workflow.store import (
    DealStore,
    IllegalTransition,
    LimitExhausted,
    Locked,
    Ops,
    VersionConflict,
    index_ops,
)

LIMIT = "LIM-T"
CAP = 100_000  # cents: a 1,000.00 limit


@pytest.fixture
def store(any_redis) -> DealStore:
    return DealStore(any_redis)


def create(store: DealStore, deal_id: str = "d1", ops: Ops | None = None) -> Deal:
    return store.create(deal_id, application_fields(make_application()), actor="exporter:t",
                        ops=ops or Ops(), now=DEMO_NOW)


def snapshot(store: DealStore, *deal_ids: str) -> dict:
    """Everything a refused write must leave untouched."""
    r = store.redis
    return {
        "deals": {d: r.hgetall(keys.deal(d)) for d in deal_ids},
        "events": {d: r.lrange(keys.events(d), 0, -1) for d in deal_ids},
        "reservations": r.hgetall(keys.exposure_reservations(LIMIT)),
        "total": r.get(keys.exposure_reserved_total(LIMIT)),
        "keys": sorted(r.keys("*")),
    }


def reserve(deal: Deal, cents: int, cap: int = CAP) -> Ops:
    return Ops().reserve(LIMIT, deal.id, cents, cap)


# --- create and transition ------------------------------------------------------------------


def test_create(store):
    deal = create(store)
    stored = store.get("d1")
    assert stored.fields == deal.fields
    assert stored.state == State.SUBMITTED and stored.version == 1
    assert stored.fields["created_at"] == iso(DEMO_NOW) == "2026-11-24T09:00:00.000+00:00"
    assert stored.application == make_application()
    [event] = store.events("d1")
    assert event["v"] == 1 and event["type"] == "submitted" and event["by"] == "exporter:t"
    assert event["from"] is None and event["to"] == "submitted"
    assert event["at"] == iso(DEMO_NOW)
    assert "why" not in event


def test_create_twice_conflicts_and_writes_nothing(store):
    create(store)
    before = snapshot(store, "d1")
    with pytest.raises(VersionConflict) as info:
        create(store)
    assert info.value.version == 1 and info.value.state == "submitted"
    assert snapshot(store, "d1") == before


def test_transition_bumps_version_and_appends_one_event(store):
    deal = create(store)
    later = DEMO_NOW + timedelta(seconds=5)
    moved = store.transition(deal, State.VERIFYING, actor="worker", event="verification_started",
                             reasons=["WHY"], changes={"note": "x"}, now=later)
    assert moved.version == 2 and moved.state == State.VERIFYING
    assert store.get("d1").fields == moved.fields
    assert moved.fields["note"] == "x" and moved.fields["updated_at"] == iso(later)
    events = store.events("d1")
    assert len(events) == 2
    assert events[1] == {
        "v": 2, "at": iso(later), "by": "worker", "type": "verification_started",
        "from": "submitted", "to": "verifying", "why": ["WHY"],
        "set": {"note": "x"},
    }


def test_stale_version_conflicts_and_writes_nothing(store):
    deal = create(store)
    store.transition(deal, State.VERIFYING, actor="worker", event="verification_started")
    before = snapshot(store, "d1")
    with pytest.raises(VersionConflict) as info:
        # `deal` is still the version-1 read: someone else has moved it since.
        store.transition(deal, State.WITHDRAWN, actor="exporter:t", event="withdrawn",
                         ops=reserve(deal, 500).lock("xb:test-lock", "d1"))
    assert info.value.version == 2 and info.value.state == "verifying"
    assert snapshot(store, "d1") == before


def test_state_is_compared_as_well_as_the_version(store):
    deal = create(store)
    forged = Deal({**deal.fields, "state": "verifying"})
    before = snapshot(store, "d1")
    with pytest.raises(VersionConflict):
        store.transition(forged, State.ROUTING, actor="worker", event="verified")
    assert snapshot(store, "d1") == before


def test_transition_of_a_missing_deal_conflicts(store):
    ghost = Deal({"id": "ghost", "state": "submitted", "version": "1"})
    with pytest.raises(VersionConflict) as info:
        store.transition(ghost, State.VERIFYING, actor="worker", event="verification_started")
    assert info.value.version == 0
    assert store.get("ghost") is None and store.events("ghost") == []


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], State.APPROVED),
        ([], State.ROUTING),
        ([State.VERIFYING, State.REJECTED], State.VERIFYING),
        ([State.WITHDRAWN], State.SUBMITTED),
    ],
)
def test_illegal_transition_refused(store, path, illegal):
    deal = create(store)
    for state in path:
        deal = store.transition(deal, state, actor="t", event="step")
    before = snapshot(store, "d1")
    with pytest.raises(IllegalTransition) as info:
        store.transition(deal, illegal, actor="t", event="bad")
    assert (info.value.current, info.value.new) == (deal.state, illegal)
    assert snapshot(store, "d1") == before


def test_json_and_typed_fields_round_trip(store):
    deal = create(store)
    moved = store.transition(
        deal, State.VERIFYING, actor="t", event="e",
        changes={"checks": {"a": "ok"}, "amount": Decimal("5"), "gone": None, "n": 3},
    )
    stored = store.get("d1")
    assert stored.get("checks") == {"a": "ok"}
    assert stored.fields["amount"] == "5.00" and stored.decimal("amount") == Decimal("5.00")
    assert stored.fields["gone"] == "" and stored.get("gone", "default") == "default"
    assert stored.fields["n"] == "3"
    assert stored.fields == moved.fields


# --- reservations -----------------------------------------------------------------------------


def test_reservation_counts_and_refuses_over_commit(store):
    a, b = create(store, "a"), create(store, "b")
    a = store.transition(a, State.VERIFYING, actor="t", event="e", ops=reserve(a, 60_000))
    assert store.reserved_cents(LIMIT) == 60_000
    before = snapshot(store, "a", "b")
    with pytest.raises(LimitExhausted) as info:
        store.transition(b, State.VERIFYING, actor="t", event="e",
                         ops=reserve(b, 40_001).zadd("xb:test-index", 1.0, "b"))
    assert keys.exposure_reservations(LIMIT) in str(info.value)
    assert snapshot(store, "a", "b") == before  # no event, no state, no index entry
    store.transition(b, State.VERIFYING, actor="t", event="e", ops=reserve(b, 40_000))
    assert store.reserved_cents(LIMIT) == CAP
    assert store.redis.hgetall(keys.exposure_reservations(LIMIT)) == {"a": "60000", "b": "40000"}


def test_reserving_twice_for_the_same_deal_counts_once(store):
    deal = create(store)
    deal = store.transition(deal, State.VERIFYING, actor="t", event="e", ops=reserve(deal, 70_000))
    # The same deal reserving again (a redelivered step) neither adds nor is refused.
    deal = store.transition(deal, State.ROUTING, actor="t", event="e", ops=reserve(deal, 70_000))
    assert store.reserved_cents(LIMIT) == 70_000
    assert store.redis.hgetall(keys.exposure_reservations(LIMIT)) == {"d1": "70000"}


def test_release_frees_room_once(store):
    a, b = create(store, "a"), create(store, "b")
    a = store.transition(a, State.VERIFYING, actor="t", event="e", ops=reserve(a, 30_000))
    b = store.transition(b, State.VERIFYING, actor="t", event="e", ops=reserve(b, 50_000))
    a = store.transition(a, State.WITHDRAWN, actor="t", event="e",
                         ops=Ops().release(LIMIT, "a"))
    assert store.reserved_cents(LIMIT) == 50_000
    # A second release of the same deal (another transition) frees nothing more.
    store.transition(a, State.WITHDRAWN, actor="t", event="again",
                     ops=Ops().release(LIMIT, "a"))
    assert store.reserved_cents(LIMIT) == 50_000
    assert store.redis.hgetall(keys.exposure_reservations(LIMIT)) == {"b": "50000"}


# --- locks -------------------------------------------------------------------------------------


def test_lock_held_by_another_deal(store):
    create(store, "a", ops=Ops().lock("xb:recv:test", "a"))
    before = snapshot(store, "a", "b")
    with pytest.raises(Locked) as info:
        create(store, "b", ops=Ops().zadd("xb:test-index", 1.0, "b").lock("xb:recv:test", "b"))
    assert (info.value.key, info.value.holder) == ("xb:recv:test", "a")
    assert snapshot(store, "a", "b") == before
    assert store.get("b") is None


def test_lock_is_reentrant_for_its_holder_and_unlock_needs_the_holder(store):
    a = create(store, "a", ops=Ops().lock("xb:recv:test", "a"))
    a = store.transition(a, State.VERIFYING, actor="t", event="e",
                         ops=Ops().lock("xb:recv:test", "a").unlock("xb:recv:test", "zz"))
    assert store.redis.get("xb:recv:test") == "a"
    store.transition(a, State.WITHDRAWN, actor="t", event="e",
                     ops=Ops().unlock("xb:recv:test", "a"))
    assert store.redis.get("xb:recv:test") is None
    create(store, "b", ops=Ops().lock("xb:recv:test", "b"))
    assert store.redis.get("xb:recv:test") == "b"


def test_one_lock_refused_refuses_all(store):
    create(store, "a", ops=Ops().lock("xb:lock-2", "a"))
    with pytest.raises(Locked) as info:
        create(store, "b", ops=Ops().lock("xb:lock-1", "b").lock("xb:lock-2", "b"))
    assert info.value.key == "xb:lock-2"
    assert store.redis.get("xb:lock-1") is None


# --- reads and indexes -------------------------------------------------------------------------


def test_indexes_page_due_defer(store):
    for i, deal_id in enumerate(["a", "b", "c"]):
        create(store, deal_id, ops=Ops().zadd("xb:idx:test", 100 + i, deal_id))
    total, deals = store.page("xb:idx:test", 0, 2)
    assert total == 3 and [d.id for d in deals] == ["c", "b"]
    total, deals = store.page("xb:idx:test", 2, 2)
    assert [d.id for d in deals] == ["a"]
    assert [d.id for d in store.page("xb:idx:test", 0, 5, newest_first=False)[1]] == [
        "a", "b", "c"]
    now = datetime.fromtimestamp(101, UTC)
    assert store.due("xb:idx:test", now) == ["a", "b"]
    assert store.defer("xb:idx:test", "a", 1, now + timedelta(seconds=10))
    assert store.due("xb:idx:test", now) == ["b"]
    assert not store.defer("xb:idx:test", "zz", 0, now)  # not indexed: stays out
    assert store.redis.zscore("xb:idx:test", "zz") is None
    assert [d.id for d in store.get_many(["c", "missing", "a"])] == ["c", "a"]


def test_index_ops_follow_the_state(store):
    deal = create(store)
    ops = index_ops(deal, State.VERIFYING, DEMO_NOW, None)
    moved = store.transition(deal, State.VERIFYING, actor="t", event="e", ops=ops)
    assert store.redis.zscore(keys.by_state("verifying"), "d1") == DEMO_NOW.timestamp()
    store.transition(moved, State.REJECTED, actor="t", event="e",
                     ops=index_ops(moved, State.REJECTED, DEMO_NOW, None))
    assert store.redis.zscore(keys.by_state("verifying"), "d1") is None
    assert not store.redis.exists(keys.by_state("rejected"))


# --- the event log is the truth -----------------------------------------------------------------


def test_rebuild_from_events_equals_the_stored_deal(any_redis, make_workflow):
    wf = make_workflow(any_redis)
    deal = wf.submit(make_application(), "key-1").deal
    deal = wf.verify(deal.id)
    deal = wf.decide(deal.id, "BOC-NB", Decision(False, "officer-1", reason="sector"))
    wf.clock.advance(minutes=5)
    deal = wf.route(deal.id)
    wf.clock.advance(hours=25)
    assert wf.expire_deadlines() == [deal.id]
    deal = wf.route(deal.id)
    deal = wf.decide(deal.id, "CCB-NB", Decision(True, "officer-3", amount=Decimal("70000")))
    stored = any_redis.hgetall(keys.deal(deal.id))
    events = wf.store.events(deal.id)
    assert [e["type"] for e in events] == [
        "submitted", "verification_started", "verified", "offered_to_bank", "declined",
        "offered_to_bank", "deadline_missed", "offered_to_bank", "approved"]
    assert [e["v"] for e in events] == list(range(1, 10))
    assert rebuild(events) == stored
    assert stored == deal.fields
    # Each raw event is one JSON document with who, what, when and the state change.
    raw = any_redis.lrange(keys.events(deal.id), 0, -1)
    assert all({"v", "at", "by", "type", "from", "to", "set"} <= set(json.loads(e)) for e in raw)


def test_rebuild_of_a_rejected_deal(any_redis, make_workflow):
    wf = make_workflow(any_redis)
    deal = wf.submit(make_application(number="INV-NOT-DECLARED")).deal
    deal = wf.verify(deal.id)
    assert deal.state == State.REJECTED
    assert rebuild(wf.store.events(deal.id)) == any_redis.hgetall(keys.deal(deal.id))
