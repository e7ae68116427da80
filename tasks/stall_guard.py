"""A worker bootstep that notices a consumer which stopped taking tasks and reconnects it."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger("xinbao.worker")


class ConsumerStalled(RedisConnectionError):
    """Raised in the worker's event loop: Celery handles it as a lost broker connection, which
    rebuilds the channel and its prefetch accounting (at-least-once: unacknowledged messages
    are restored, and every task is idempotent)."""


class StallCheck:
    """Celery's Redis consumer can stop taking messages after Redis restarts (celery/celery
    #8091, #9054, #10302: an acknowledgement lost with the connection leaves the channel
    believing its prefetch window is full). Stalled = tasks wait in the consumed queues, a pool
    process is free, and nothing was received for ``checks`` checks in a row."""

    def __init__(self, checks: int):
        self.checks = checks
        self.idle_checks = 0
        self.received = -1

    def observe(self, received: int, waiting: int, busy: int, processes: int) -> bool:
        """Record one check; True when the consumer is to be taken for stalled."""
        moved = received != self.received
        self.received = received
        if moved or waiting == 0 or busy >= processes:
            self.idle_checks = 0
            return False
        self.idle_checks += 1
        return self.idle_checks >= self.checks


class StallGuard(bootsteps.StartStopStep):
    """Every ``interval`` seconds, in the consumer's own event loop, run :class:`StallCheck`."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any):
        super().__init__(c, **kwargs)
        conf = c.app.conf
        self.interval = float(conf.get("xinbao_stall_check_seconds") or 10.0)
        self.check = StallCheck(int(conf.get("xinbao_stall_checks") or 3))
        self.timer_entry = None

    def start(self, c: Any) -> None:
        self.check = StallCheck(self.check.checks)  # a fresh window after each (re)connection
        self.timer_entry = c.timer.call_repeatedly(self.interval, self.tick, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop

    def tick(self, c: Any) -> None:
        try:
            waiting = waiting_messages(c)
        except Exception:  # noqa: BLE001 - the broker is away: the consumer sees to that itself
            return
        busy = len(state.active_requests)
        processes = getattr(c.pool, "num_processes", None) or 1
        if self.check.observe(state.all_total_count[0], waiting, busy, processes):
            log.error(
                "consumer stalled: tasks waiting, none taken; reconnecting to the broker",
                extra={"waiting": waiting, "busy": busy, "processes": processes},
            )
            raise ConsumerStalled("consumer stalled with tasks waiting")


def waiting_messages(c: Any) -> int:
    """Messages waiting in the queues this consumer takes from (kombu's passive declare)."""
    channel = c.connection.default_channel
    return sum(
        queue(channel).queue_declare(passive=True).message_count
        for queue in c.task_consumer.queues
    )
