"""Waiting for a replica's acknowledgement of a write (WAIT), the guard against losing an
accepted write when Sentinel promotes a replica that had not received it yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflow import keys


@dataclass(frozen=True)
class ReplicaAck:
    """What the primary answered: replicas that hold everything up to the write, and
    whether the deal written is there at (at least) the version the caller wrote."""

    replicas: int
    deal_present: bool

    def ok(self, wanted: int) -> bool:
        return self.deal_present and self.replicas >= wanted


def await_replicas(
    client: Any,
    replicas: int,
    timeout_ms: int,
    deal_id: str | None = None,
    version: int | None = None,
) -> ReplicaAck:
    """Ask the primary to wait until ``replicas`` replicas have everything it holds now.

    WAIT counts only the writes made on its own connection, and a request's writes may have
    gone out on other connections of the pool (or, across a failover, to another server).
    So on one connection this reads the deal back, makes one write of its own (after every
    write the primary had taken, the deal's included) and then WAITs for that: acknowledged
    means the deal as read, on the server that is primary now, is on a replica too. A deal
    lost in a failover reads back older or absent and is reported, not acknowledged."""
    pipe = client.pipeline(transaction=False)
    if deal_id is not None:
        pipe.hget(keys.deal(deal_id), "version")
    pipe.incr(keys.replica_ack_probe())
    pipe.wait(replicas, timeout_ms)
    answers = pipe.execute()
    present = True
    if deal_id is not None:
        found = answers[0]
        present = found is not None and int(found) >= (version or 0)
    return ReplicaAck(replicas=int(answers[-1]), deal_present=present)


__all__ = ["ReplicaAck", "await_replicas"]
