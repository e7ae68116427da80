"""Heartbeats the readiness check reads: workers that ran a sweep lately, and beat that sent one."""

from __future__ import annotations

from typing import Any

from workflow import keys


def record_worker(redis: Any, hostname: str, now: float) -> None:
    """A worker ran beat's sweep at ``now`` (epoch seconds)."""
    redis.zadd(keys.worker_heartbeats(), {hostname: now})


def record_beat(redis: Any, now: float) -> None:
    """Beat sent a sweep at ``now``."""
    redis.set(keys.beat_heartbeat(), repr(now))


def live_workers(redis: Any, now: float, within: float) -> list[str]:
    """Workers heard from in the last ``within`` seconds (older entries are dropped)."""
    redis.zremrangebyscore(keys.worker_heartbeats(), "-inf", now - 24 * 3600)
    found = redis.zrangebyscore(keys.worker_heartbeats(), now - within, "+inf")
    return [h.decode() if isinstance(h, bytes) else h for h in found]


def beat_age(redis: Any, now: float) -> float | None:
    """Seconds since beat last sent a sweep (None: never heard of)."""
    raw = redis.get(keys.beat_heartbeat())
    return None if raw is None else max(now - float(raw), 0.0)


__all__ = ["beat_age", "live_workers", "record_beat", "record_worker"]
