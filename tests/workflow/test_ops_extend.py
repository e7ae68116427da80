"""Ops.extend: the merged operations of two moves are exactly the first's then the second's, and
one transition script run with them writes what the two moves' scripts one after the other
write."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workflow import keys
from workflow.ops import _ARITY, _KEY_ARGS, REFUSING, Ops
from workflow.states import State
from workflow.store import DealStore, Move

pytestmark = pytest.mark.redis

DEAL = "20261126-OPSX0001"
OTHER = "20261126-OPSX0002"
# A few keys of every kind, so two moves' operations often meet on the same key.
ZSETS = ["xb:t:z1", "xb:t:z2"]
HASHES = ["xb:t:h1", "xb:t:h2"]
SETS = ["xb:t:s1"]
LISTS = ["xb:t:l1"]
STRINGS = ["xb:t:k1", "xb:t:k2"]
EXPOSURES = ["EXP-1", "EXP-2"]
BANKS = ["BANK-A"]
HOLDERS = [DEAL, OTHER]

member = st.sampled_from([DEAL, OTHER, "m3"])
cents = st.integers(1, 500)
# Operations that never refuse a transition, and those that may (lock, reserve, expect).
quiet_op = st.one_of(
    st.tuples(st.just("zadd"), st.sampled_from(ZSETS), st.integers(0, 9), member),
    st.tuples(st.just("zrem"), st.sampled_from(ZSETS), member),
    st.tuples(st.just("release"), st.sampled_from(EXPOSURES), member),
    st.tuples(st.just("shrink"), st.sampled_from(EXPOSURES), member, st.integers(0, 500)),
    st.tuples(st.just("hincr"), st.sampled_from(HASHES), st.sampled_from(["f1", "f2"]),
              st.integers(-3, 3)),
    st.tuples(st.just("sadd_count"), st.sampled_from(SETS), member, st.sampled_from(HASHES),
              st.sampled_from(["first", "f1"])),
    st.tuples(st.just("flag"), st.sampled_from(STRINGS), st.just(60)),
    st.tuples(st.just("rpush"), st.sampled_from(LISTS), member),
    st.tuples(st.just("unlock"), st.sampled_from(STRINGS), st.sampled_from(HOLDERS)),
    st.tuples(st.just("feed"), st.sampled_from(BANKS), st.sampled_from(['{"v":0}', '{"x":1}'])),
)
refusing_op = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(EXPOSURES), member, cents,
              st.integers(0, 1000)),
    st.tuples(st.just("lock"), st.sampled_from(STRINGS), st.sampled_from(HOLDERS),
              st.sampled_from([0, 60])),
    st.tuples(st.just("expect"), st.sampled_from(STRINGS), st.sampled_from([*HOLDERS, "1"])),
)
any_op = st.one_of(quiet_op, refusing_op)


def build(spec: list[tuple]) -> Ops:
    ops = Ops()
    for name, *args in spec:
        if name == "feed":
            ops.feed(args[0], DEAL, args[1], False, 86_400_000)
        else:
            getattr(ops, name)(*args)
    return ops


def resolved(ops: Ops) -> list[tuple[str, ...]]:
    """Each operation with its key indexes replaced by the keys they name."""
    out, pos = [], 0
    all_keys = [keys.deal(DEAL), keys.events(DEAL), *ops.keys]
    for _ in range(ops.count):
        name = ops.args[pos]
        args = list(ops.args[pos + 1 : pos + 1 + _ARITY[name]])
        for at in _KEY_ARGS.get(name, (0,)):
            args[at] = all_keys[int(args[at]) - 1]
        out.append((name, *args))
        pos += 1 + _ARITY[name]
    assert pos == len(ops.args)
    return out


@given(a=st.lists(any_op, max_size=6), b=st.lists(any_op, max_size=6))
def test_extend_is_the_first_moves_operations_then_the_seconds(a, b):
    first, second = build(a), build(b)
    merged = first.copy().extend(second)
    assert resolved(merged) == resolved(first) + resolved(second)
    assert len(merged.keys) == len(set(merged.keys))
    assert merged.count == first.count + second.count
    # extend copies: neither side's operations change
    assert resolved(first) == resolved(build(a)) and resolved(second) == resolved(build(b))


def everything(client: Any) -> dict[str, Any]:
    """Every key but the deal's own, streams without their entry ids."""
    out = {}
    for name in sorted(client.keys("*")):
        if name in (keys.deal(DEAL), keys.events(DEAL)):
            continue
        kind = client.type(name)
        read = {
            "hash": lambda n: client.hgetall(n),
            "list": lambda n: client.lrange(n, 0, -1),
            "zset": lambda n: client.zrange(n, 0, -1, withscores=True),
            "string": lambda n: (client.get(n), client.ttl(n) > 0),
            "set": lambda n: sorted(client.smembers(n)),
            "stream": lambda n: [fields for _, fields in client.xrange(n)],
        }[kind]
        out[name] = read(name)
    return out


def seed(client: Any) -> None:
    """Some state for the operations to meet: a held lock, reservations, counters."""
    client.flushdb()
    client.set("xb:t:k2", OTHER)
    client.hset(keys.exposure_reservations("EXP-1"), OTHER, 300)
    client.set(keys.exposure_reserved_total("EXP-1"), 300)
    client.hset("xb:t:h1", "f1", 2)


def run(client: Any, moves_ops: list[Ops]) -> tuple[str, dict[str, Any]]:
    """Create the deal, then one in-state move per Ops, each its own transition; the outcome
    (OK or the refusal's name) and what Redis then holds."""
    store = DealStore(client)
    seed(client)
    deal = store.create(DEAL, {"x": "1"}, actor="t", ops=Ops())
    try:
        for ops in moves_ops:
            deal = store.transition(deal, State.SUBMITTED, actor="t", event="e", ops=ops)
    except Exception as exc:  # noqa: BLE001 - the refusal is the outcome compared
        return type(exc).__name__, everything(client)
    return "OK", everything(client)


@pytest.fixture(scope="module")
def client(redis_server_url):
    c = redis.Redis.from_url(redis_server_url, decode_responses=True)
    yield c
    c.flushdb()
    c.close()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(a=st.lists(quiet_op, max_size=5), b=st.lists(quiet_op, max_size=5))
def test_one_script_with_extended_ops_writes_what_two_scripts_write(client, a, b):
    merged = build(a).extend(build(b))
    assert run(client, [merged]) == run(client, [build(a), build(b)])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(a=st.lists(any_op, max_size=4), b=st.lists(any_op, max_size=4))
# The script checks an expectation against Redis before the chain: one on a key an earlier
# move sets must be refused as a chain (expect is REFUSING), or it would wrongly fail.
@example(a=[("lock", "xb:t:k1", DEAL, 0)], b=[("expect", "xb:t:k1", DEAL)])
def test_a_chain_refuses_exactly_what_its_moves_one_by_one_refuse(client, a, b):
    moves = [Move(State.SUBMITTED, "t", "e", ops=build(a)),
             Move(State.SUBMITTED, "t", "e", ops=build(b))]
    alone, alone_state = run(client, [build(a), build(b)])
    store = DealStore(client)
    seed(client)
    deal = store.create(DEAL, {"x": "1"}, actor="t", ops=Ops())
    untouched = everything(client)
    try:
        store.transitions(deal, moves)
        chained = "OK"
    except ValueError:
        # A chain whose lock or reserve shares a key with its other move is refused before
        # anything is sent: the script could not check it as the moves one by one would.
        assert {k for n, k in build(b).touched() if n in REFUSING} & {
            k for _, k in build(a).touched()}
        assert everything(client) == untouched
        return
    except Exception as exc:  # noqa: BLE001 - the refusal is the outcome compared
        chained = type(exc).__name__
    # Committed: what the moves one by one write; refused: as one by one, and nothing written.
    assert chained == alone
    assert everything(client) == (alone_state if alone == "OK" else untouched)
