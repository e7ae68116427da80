"""The Redis deal store: atomic versioned transitions with their event, indexes and locks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from typing import Any

from workflow import keys
from workflow.deal import DERIVED_FIELDS, Deal, encode_fields, iso, utcnow
from workflow.feed import DEFAULT_RETENTION_DAYS, feed_json, feed_targets
from workflow.ops import REFUSING, Ops
from workflow.states import TERMINAL, State, can_transition

# Told of every committed transition: (the deal as read before, or None for a new one; the deal
# after; the event appended). Metrics use it (workflow.metrics); it must not raise.
Observer = Callable[["Deal | None", Deal, dict[str, Any]], None]


class StoreError(Exception):
    """Base of the store's refusals."""


class IllegalTransition(StoreError):
    def __init__(self, current: State, new: State):
        super().__init__(f"a deal in {current} cannot move to {new}")
        self.current, self.new = current, new


class VersionConflict(StoreError):
    """Someone else changed the deal first; re-read and decide again."""

    def __init__(self, deal_id: str, version: int, state: str):
        super().__init__(f"deal {deal_id} is now at version {version} ({state or 'absent'})")
        self.deal_id, self.version, self.state = deal_id, version, state


class LimitExhausted(StoreError):
    """A reservation would take a buyer limit past its amount."""


class Locked(StoreError):
    """A lock (receivable, idempotency key) is held by another deal."""

    def __init__(self, key: str, holder: str):
        super().__init__(f"{key} is held by deal {holder}")
        self.key, self.holder = key, holder


class ExpectationFailed(StoreError):
    """A key the transition expected to hold a value (``Ops.expect``) holds something else."""

    def __init__(self, key: str):
        super().__init__(f"{key} no longer holds what the transition expected")
        self.key = key


@dataclass
class Move:
    """One transition of a deal: its new state, who made it, the event, what it changes and
    the side effects that commit with it (``DealStore.transitions`` chains several)."""

    new_state: State
    actor: str
    event: str
    reasons: list[str] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    ops: Ops = field(default_factory=Ops)
    now: datetime | None = None


def _check_chain(moves: list[Move]) -> None:
    """Refuse (ValueError: a programming error) a chain the script cannot check: one without
    moves, or one where a move locks or reserves a key an earlier move's operations touch
    (the script checks locks and reserves against Redis as it was before the chain, not
    after its earlier moves)."""
    if not moves:
        raise ValueError("a chain needs at least one move")
    if len(moves) == 1:
        return  # nothing earlier to collide with: no parsing on every single transition
    earlier: set[str] = set()
    for move in moves:
        ops = move.ops.touched()
        shared = {key for name, key in ops if name in REFUSING} & earlier
        if shared:
            raise ValueError(
                f"a chain locks or reserves {sorted(shared)} after an earlier move touched"
                " it: commit those moves one by one"
            )
        earlier.update(key for _, key in ops)


def _staged(state: State, move: Move) -> Move:
    """``move`` from ``state`` with the fields every transition sets; refuses what the table
    of transitions does not allow."""
    if move.new_state != state and not can_transition(state, move.new_state):
        raise IllegalTransition(state, move.new_state)
    now = move.now or utcnow()
    changes = {**move.changes, "state": move.new_state, "updated_at": now}
    if move.new_state != state:
        changes["state_at"] = now
    return replace(move, changes=changes, now=now)


def epoch_seconds(moment: datetime) -> float:
    """A sorted-set score for a moment: epoch seconds to the millisecond."""
    return round(moment.timestamp(), 3)


class DealStore:
    """Reads and atomically changes deals in Redis (a client with ``decode_responses=True``)."""

    def __init__(
        self,
        redis: Any,
        observers: tuple[Observer, ...] = (),
        feed_retention_days: int = DEFAULT_RETENTION_DAYS,
    ):
        self.redis = redis
        self.observers = list(observers)
        self.feed_retention_ms = feed_retention_days * 86_400_000
        lua = resources.files("workflow").joinpath("lua")
        self._transition = redis.register_script(lua.joinpath("transition.lua").read_text())
        self._index_entry = redis.register_script(lua.joinpath("index_entry.lua").read_text())

    # --- reads -------------------------------------------------------------------------------

    def get(self, deal_id: str) -> Deal | None:
        fields = self.redis.hgetall(keys.deal(deal_id))
        return Deal(fields) if fields else None

    def get_with(self, deal_id: str, key: str) -> tuple[Deal | None, str | None]:
        """The deal and the string value of ``key``, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.deal(deal_id))
        pipe.get(key)
        fields, value = pipe.execute()
        return (Deal(fields) if fields else None), value

    def get_many_with(
        self, deal_ids: list[str], key: str
    ) -> tuple[list[Deal | None], str | None]:
        """The deals (None where absent), in order, and the string value of ``key``: one
        round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for deal_id in deal_ids:
            pipe.hgetall(keys.deal(deal_id))
        pipe.get(key)
        *found, value = pipe.execute()
        return [Deal(fields) if fields else None for fields in found], value

    def get_many(self, deal_ids: list[str]) -> list[Deal]:
        pipe = self.redis.pipeline(transaction=False)
        for deal_id in deal_ids:
            pipe.hgetall(keys.deal(deal_id))
        return [Deal(f) for f in pipe.execute() if f]

    def events(self, deal_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(keys.events(deal_id), 0, -1)]

    def events_many(self, deal_ids: list[str]) -> list[list[dict[str, Any]]]:
        """The event logs of several deals in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for deal_id in deal_ids:
            pipe.lrange(keys.events(deal_id), 0, -1)
        return [[json.loads(e) for e in log] for log in pipe.execute()]

    def page(self, index_key: str, offset: int, limit: int, newest_first: bool = True):
        """One page of an index: (total, deals). Reads only the index, never scans keys."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(index_key)
        if newest_first:
            pipe.zrevrange(index_key, offset, offset + limit - 1)
        else:
            pipe.zrange(index_key, offset, offset + limit - 1)
        total, ids = pipe.execute()
        return total, self.get_many(ids)

    def due(self, index_key: str, now: datetime, limit: int = 500) -> list[str]:
        """Members of a schedule index whose score (a due time) has passed."""
        return self.redis.zrangebyscore(index_key, "-inf", epoch_seconds(now), start=0, num=limit)

    def versions(self, deal_ids: list[str]) -> list[int]:
        """Each deal's current version (0 for a deal that does not exist), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for deal_id in deal_ids:
            pipe.hget(keys.deal(deal_id), "version")
        return [int(v or 0) for v in pipe.execute()]

    def reserved_cents(self, exposure: str) -> int:
        """Cents reserved or used on a buyer exposure (see ``BuyerLimit.exposure``)."""
        return int(self.redis.get(keys.exposure_reserved_total(exposure)) or 0)

    def receivable_holder(self, uscc: str, buyer_code: str, invoice: str) -> str | None:
        return self.redis.get(keys.receivable(uscc, buyer_code, invoice))

    # --- writes ------------------------------------------------------------------------------

    # Index entries change with their deal's transition. The two changes below happen outside
    # one, so each is conditional on the deal still being at the version the caller read.

    def prune(self, index_key: str, deal_id: str, seen_version: int) -> bool:
        """Remove a leftover index entry unless the deal has changed since it was read."""
        args = ["zrem", deal_id, str(seen_version)]
        return bool(self._index_entry(keys=[keys.deal(deal_id), index_key], args=args))

    def defer(
        self,
        index_key: str,
        deal_id: str,
        seen_version: int,
        until: datetime,
        *,
        if_due_by: datetime | None = None,
    ) -> bool:
        """Move a still-indexed deal's due time to ``until``; with ``if_due_by`` only an entry
        due by then moves (a claim: of overlapping sweeps, one wins). False if nothing moved."""
        args = [
            "defer",
            deal_id,
            str(seen_version),
            repr(epoch_seconds(until)),
            "" if if_due_by is None else repr(epoch_seconds(if_due_by)),
        ]
        return bool(self._index_entry(keys=[keys.deal(deal_id), index_key], args=args))

    def create(
        self,
        deal_id: str,
        fields: dict[str, Any],
        *,
        actor: str,
        ops: Ops,
        now: datetime | None = None,
    ) -> Deal:
        """Write a new deal in state ``submitted``; raises Locked if a lock in ``ops`` is held."""
        now = now or utcnow()
        changes = {
            "id": deal_id,
            **fields,
            "state": State.SUBMITTED,
            "created_at": now,
            "updated_at": now,
            "state_at": now,
        }
        move = Move(State.SUBMITTED, actor, "submitted", [], changes, ops, now)
        call = self._prepare(deal_id, "0", "", [move], None)
        return self._finish(call, self._transition(keys=call.keys, args=call.argv))[-1]

    def transition(
        self,
        deal: Deal,
        new_state: State,
        *,
        actor: str,
        event: str,
        reasons: list[str] | None = None,
        changes: dict[str, Any] | None = None,
        ops: Ops | None = None,
        now: datetime | None = None,
    ) -> Deal:
        """Move ``deal`` (as read, at its version) to ``new_state`` in one atomic step."""
        move = Move(new_state, actor, event, reasons or [], changes or {}, ops or Ops(), now)
        return self.transitions(deal, [move])[-1]

    def transitions(self, deal: Deal, moves: list[Move]) -> list[Deal]:
        """Several transitions of ``deal`` (as read, at its version), one after the other, in
        ONE atomic step: one compare-and-set, every event, index, limit and lock change, or
        nothing. The deal after each move, in order. A chain saves a round trip and an fsync
        per move; nobody sees the states in between."""
        call = self._chain_call(deal, moves)
        return self._finish(call, self._transition(keys=call.keys, args=call.argv))

    def _chain_call(self, deal: Deal, moves: list[Move]) -> _Call:
        """The script call that commits ``moves`` of ``deal`` one after the other."""
        _check_chain(moves)
        state, staged = deal.state, []
        for move in moves:
            staged.append(_staged(state, move))
            state = move.new_state
        return self._prepare(deal.id, str(deal.version), deal.state, staged, deal)

    @staticmethod
    def preview(deal: Deal, move: Move) -> Deal:
        """The deal as ``move`` would leave it, unwritten: where a chain's next move starts."""
        staged = _staged(deal.state, move)
        fields = {**deal.fields, **encode_fields(staged.changes)}
        fields["version"] = str(deal.version + 1)
        return Deal(fields)

    def transitions_many(
        self, chains: list[tuple[Deal, list[Move]]]
    ) -> list[list[Deal] | StoreError]:
        """Several deals' chains (each as :meth:`transitions`), sent in one pipeline: each
        chain atomic on its own, refused or committed on its own. For each chain, the deals
        after its moves, or the refusal (VersionConflict, LimitExhausted, Locked; StoreError
        when the script is not loaded: the caller retries that deal on its own)."""
        staged = [self._chain_call(deal, moves) for deal, moves in chains]
        pipe = self.redis.pipeline(transaction=False)
        sha = self._transition.sha
        for call in staged:
            pipe.evalsha(sha, len(call.keys), *call.keys, *call.argv)
        out: list[list[Deal] | StoreError] = []
        for call, result in zip(staged, pipe.execute(raise_on_error=False), strict=True):
            try:
                if isinstance(result, Exception):
                    raise StoreError(f"transition of {call.deal_id} not run: {result}")
                out.append(self._finish(call, result))
            except StoreError as exc:
                out.append(exc)
        return out

    def _prepare(
        self,
        deal_id: str,
        expected: str,
        expected_state: str,
        moves: list[Move],
        before: Deal | None,
    ) -> _Call:
        ops, events = Ops(), []
        steps: list[tuple[Deal | None, Deal, dict[str, Any]]] = []
        fields = dict(before.fields) if before else {}
        state, current, version = expected_state, before, int(expected)
        encoded_all: dict[str, str] = {}
        for n, move in enumerate(moves):
            version += 1
            encoded = encode_fields(move.changes)
            event = {
                "v": version,
                "at": iso(move.now),
                "by": move.actor,
                "type": move.event,
                "from": state or None,
                "to": str(move.new_state),
                # The fields the event's own header already says are left out (see rebuild).
                "set": {k: v for k, v in encoded.items() if k not in DERIVED_FIELDS},
            }
            if move.reasons:
                event["why"] = move.reasons
            # A copy: the callers' Ops may be used again after a conflict.
            ops = move.ops.copy() if n == 0 else ops.extend(move.ops)
            targets = feed_targets(current, move.event, move.changes)
            if targets:
                # The banks' feeds get the event in the same script.
                shown, later = feed_json(event), len(moves) - 1 - n
                for bank_id, backfill in targets:
                    ops.feed(bank_id, deal_id, shown, backfill, self.feed_retention_ms, later)
            if move.new_state in TERMINAL and move.new_state != state:
                ops.hincr(keys.deals_ended(), str(move.new_state), 1)
            events.append(event)
            encoded_all.update(encoded)
            fields.update(encoded)
            fields["version"] = str(version)
            after = Deal(dict(fields))
            steps.append((current, after, event))
            current, state = after, move.new_state
        argv: list[str] = [expected, str(expected_state), str(len(events))]
        argv += [json.dumps(event, separators=(",", ":")) for event in events]
        argv.append(str(len(encoded_all)))
        for name, value in encoded_all.items():
            argv += [name, value]
        argv += [str(ops.count), *ops.args]
        all_keys = [keys.deal(deal_id), keys.events(deal_id), *ops.keys]
        return _Call(deal_id, all_keys, argv, moves, steps)

    def _finish(self, call: _Call, result: list[Any]) -> list[Deal]:
        outcome = result[0]
        if outcome == "OK":
            flagged = len(result) > 2 and int(result[2]) == 1
            for move in call.moves:
                move.ops.flagged = flagged
            for was, after, event in call.steps:
                for observe in self.observers:
                    try:
                        observe(was, after, event)
                    except Exception:  # noqa: BLE001 - a metric never undoes or fails a commit
                        logging.getLogger("xinbao.store").exception("transition observer failed")
            return [after for _, after, _ in call.steps]
        if outcome == "CONFLICT":
            raise VersionConflict(call.deal_id, int(result[1] or 0), result[2])
        if outcome == "LIMIT":
            raise LimitExhausted(call.keys[int(result[1]) - 1])
        if outcome == "LOCKED":
            raise Locked(call.keys[int(result[1]) - 1], result[2])
        if outcome == "EXPECTED":
            raise ExpectationFailed(call.keys[int(result[1]) - 1])
        raise StoreError(f"unexpected script answer {result!r}")


@dataclass
class _Call:
    """One transition script call, ready to send, and what its answer is read with."""

    deal_id: str
    keys: list[str]
    argv: list[str]
    moves: list[Move]
    steps: list[tuple[Deal | None, Deal, dict[str, Any]]]


def index_ops(
    deal: Deal, new_state: State, now: datetime, due: datetime | None, ops: Ops | None = None
) -> Ops:
    """The state-index changes that follow a deal from its state into ``new_state``: out of
    the old state's index, into the new one's scored by when its next step is due."""
    ops = ops if ops is not None else Ops()
    old = deal.state
    if old not in TERMINAL and old != new_state:
        ops.zrem(keys.by_state(old), deal.id)
    if new_state not in TERMINAL:
        ops.zadd(keys.by_state(new_state), epoch_seconds(due or now), deal.id)
    return ops


__all__ = [
    "DealStore",
    "IllegalTransition",
    "LimitExhausted",
    "Locked",
    "Move",
    "Ops",
    "StoreError",
    "VersionConflict",
    "epoch_seconds",
    "index_ops",
]
