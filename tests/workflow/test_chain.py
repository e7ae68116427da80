"""A chain of moves (one script call) writes exactly what the same moves one by one write."""

from __future__ import annotations

import json

import fakeredis
import pytest

from tests.conftest import make_application
from workflow import intake, keys
from workflow.states import State
from workflow.store import Move, Ops


def verified_alone(wf, monkeypatch, app):
    """Submit ``app`` and verify it with every move committed on its own (no chain)."""
    monkeypatch.setattr(intake, "Chain", lambda deal: None)
    try:
        return verify(wf, app)
    finally:
        monkeypatch.undo()


def verify(wf, app):
    deal = wf.submit(app).deal
    return wf.verify(deal.id)


def keyspace(client, deal_id: str) -> dict:
    """Everything in Redis about the deal: its hash, event log and each key's entry for it
    (sorted sets with scores, hashes, strings, sets, streams without their entry ids), with
    the deal id written as ``<id>`` so two runs compare."""
    out: dict = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == "zset":
            entry = client.zscore(key, deal_id)
        elif kind == "hash":
            entry = client.hgetall(key) if deal_id in key else client.hget(key, deal_id)
            if key.startswith("xb:counter") or "portfolio" in key or "ended" in key:
                entry = client.hgetall(key)  # counters: the whole hash
        elif kind == "list":
            entry = client.lrange(key, 0, -1) if deal_id in key else None
        elif kind == "string":
            value = client.get(key)
            entry = value if deal_id in key or value == deal_id or "total" in key else None
        elif kind == "set":
            entry = client.sismember(key, deal_id) or None
        elif kind == "stream":
            entry = [f for _, f in client.xrange(key)] or None
        else:
            entry = None
        if entry is not None:
            out[key.replace(deal_id, "<id>")] = json.loads(
                json.dumps(entry, default=str).replace(deal_id, "<id>")
            )
    return out


@pytest.fixture
def two(make_workflow, monkeypatch):
    """Two workflows on two separate fake Redis servers, the same clock and deal id."""
    monkeypatch.setattr(intake, "new_deal_id", lambda: "20261126-CHAIN0001")

    def one():
        return make_workflow(fakeredis.FakeRedis(server=fakeredis.FakeServer(),
                                                 decode_responses=True))

    return one(), one()


@pytest.mark.parametrize(
    "app, state",
    [
        (make_application(), State.PENDING_BANK),
        (make_application(policy_no="SIN-2099-9999"), State.REJECTED),
        (make_application(requested_amount="900000.00", amount="900000.00"), State.REJECTED),
    ],
    ids=["offered", "rejected-on-cover", "rejected-on-limit"],
)
def test_chained_verify_writes_what_the_moves_one_by_one_write(two, monkeypatch, app, state):
    chained_wf, alone_wf = two
    chained = verify(chained_wf, app)
    with monkeypatch.context() as patch:
        alone = verified_alone(alone_wf, patch, app)
    assert chained.state == alone.state == state
    assert chained.fields == alone.fields
    assert keyspace(chained_wf.store.redis, chained.id) == keyspace(alone_wf.store.redis, alone.id)


def test_the_bank_feed_gets_the_earlier_events_once_and_in_order(two):
    wf = two[0]
    deal = verify(wf, make_application())
    feed = wf.store.redis.xrange(keys.bank_feed(deal.bank_id))
    types = [json.loads(f["event"])["type"] for _, f in feed]
    assert types == ["submitted", "verification_started", "verified", "offered_to_bank"]
    assert [json.loads(f["event"])["v"] for _, f in feed] == [1, 2, 3, 4]


def test_a_refused_chain_writes_nothing(two):
    wf = two[0]
    deal = wf.submit(make_application()).deal
    before = keyspace(wf.store.redis, deal.id)
    taken = Ops().lock("xb:test:lock", "someone-else")
    wf.store.redis.set("xb:test:lock", "another-deal")
    moves = [
        Move(State.VERIFYING, "worker", "verification_started"),
        Move(State.ROUTING, "worker", "verified", ops=taken),
    ]
    with pytest.raises(Exception, match="held by"):
        wf.store.transitions(deal, moves)
    assert keyspace(wf.store.redis, deal.id) == before
    assert wf.store.get(deal.id).version == deal.version


def test_a_chain_checks_every_move_against_the_table(two):
    wf = two[0]
    deal = wf.submit(make_application()).deal
    with pytest.raises(Exception, match="cannot move"):
        moves = [Move(State.VERIFYING, "w", "a"), Move(State.APPROVED, "w", "b")]
        wf.store.transitions(deal, moves)
    assert wf.store.get(deal.id).version == deal.version


def test_an_event_inside_a_chain_backfills_only_what_came_before_it(two):
    # The bank is offered the deal and the offer ends in the same chain: its feed gets the
    # earlier events once, then the offer, then its end; nothing twice.
    wf = two[0]
    deal = wf.submit(make_application()).deal
    offered = {"bank_id": "BOC-NB", "offered_banks": ["BOC-NB"]}
    moves = [
        Move(State.VERIFYING, "worker", "verification_started"),
        Move(State.ROUTING, "worker", "verified"),
        Move(State.PENDING_BANK, "worker", "offered_to_bank", changes=offered),
        Move(State.ROUTING, "sweeper", "deadline_missed", changes={"bank_id": None}),
    ]
    wf.store.transitions(deal, moves)
    feed = wf.store.redis.xrange(keys.bank_feed("BOC-NB"))
    assert [json.loads(f["event"])["type"] for _, f in feed] == [
        "submitted", "verification_started", "verified", "offered_to_bank", "deadline_missed"
    ]
    assert [e["v"] for e in wf.store.events(deal.id)] == [1, 2, 3, 4, 5]
    assert wf.store.get(deal.id).version == 5


# --- a drain's batch ------------------------------------------------------------------------


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def test_a_batch_verifies_each_deal_as_verify_alone_would(wf):
    # Two deals that together pass the DE buyer's limit (500,000): the first in the batch
    # takes it, the second's chain is refused and left to verify(), which rejects it with
    # the room left. One fails on cover; one was verified already; one does not exist.
    first = wf.submit(make_application(amount="450000.00", requested_amount="300000.00")).deal
    second = wf.submit(make_application(number="INV-HX-1002", amount="60000.00",
                                        requested_amount="40000.00")).deal
    bad = wf.submit(make_application(number="INV-HX-1003", policy_no="SIN-2099-9999")).deal
    done = wf.submit(make_application(number="INV-HX-1004", amount="10000.00",
                                      requested_amount="5000.00")).deal
    wf.verify(done.id)
    entries = [(first.id, "req-1"), (second.id, None), (bad.id, "req-3"), (done.id, None),
               ("20261126-NOSUCHDEAL", None)]
    left = wf.verify_many(entries)
    assert left == [(done.id, None), ("20261126-NOSUCHDEAL", None), (second.id, None)]
    assert wf.store.get(first.id).state == State.PENDING_BANK
    assert wf.store.get(bad.id).state == State.REJECTED
    assert wf.store.get(second.id).state == State.SUBMITTED  # untouched: verify() decides
    for deal_id, _ in left:
        wf.verify(deal_id)
    second = wf.store.get(second.id)
    assert second.state == State.REJECTED and second.get("reasons") == ["LIMIT_INSUFFICIENT"]
    assert second.get("failures")[0]["available"] == "50000.00"
    assert [e["type"] for e in wf.store.events(first.id)] == [
        "submitted", "verification_started", "verified", "offered_to_bank"]
    assert [e["type"] for e in wf.store.events(second.id)] == [
        "submitted", "verification_started", "rejected"]


def test_a_batch_with_a_remote_insurer_is_left_to_verify_alone(wf, monkeypatch):
    deal = wf.submit(make_application()).deal
    monkeypatch.setattr(wf.insurer, "cover_facts_at", None)
    assert wf.verify_many([(deal.id, None)]) == [(deal.id, None)]
    assert wf.store.get(deal.id).fields == deal.fields


def test_a_check_that_fails_in_a_batch_leaves_that_deal_alone(wf, monkeypatch):
    ok = wf.submit(make_application()).deal
    broken = wf.submit(make_application(number="INV-HX-1009", amount="20000.00",
                                        requested_amount="10000.00")).deal
    real = wf.insurer.cover_facts_at

    def flaky(app, view):
        if app.invoices[0].number == "INV-HX-1009":
            raise ConnectionError("redis went away")
        return real(app, view)

    monkeypatch.setattr(wf.insurer, "cover_facts_at", flaky)
    assert wf.verify_many([(ok.id, None), (broken.id, None)]) == [(broken.id, None)]
    assert wf.store.get(ok.id).state == State.PENDING_BANK
    assert wf.store.get(broken.id).fields == broken.fields
