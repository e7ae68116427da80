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
