"""A bare Celery worker app with Xinbao's StallGuard, and a test-only step that makes its
consumer stall the way a lost acknowledgement does (tests/tasks/test_stall_guard.py)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import redis
from celery import Celery, bootsteps

from tasks.stall_guard import StallGuard

BROKER = os.environ.get("STALL_BROKER", "redis://127.0.0.1:6379/15")


class LeakAcks(bootsteps.StartStopStep):
    """When the test sets the key ``leak``, fill the consuming channel's prefetch window with
    delivery tags that will never be acknowledged: what an ack lost to a broken connection
    leaves behind (kombu counts the message as still held)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        self.entry = c.timer.call_repeatedly(0.2, self.tick, (c,))

    def stop(self, c: Any) -> None:
        self.entry.cancel()

    def tick(self, c: Any) -> None:
        client = redis.Redis.from_url(BROKER)
        if client.delete("leak"):
            qos = c.task_consumer.channel.qos
            for _ in range(max(qos.prefetch_count, 1)):
                qos._delivered[f"leaked-{uuid.uuid4()}"] = None


app = Celery("stall", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    xinbao_stall_check_seconds=float(os.environ.get("STALL_CHECK_SECONDS", "0.5")),
    xinbao_stall_checks=3,
)
if os.environ.get("STALL_GUARD", "1") == "1":
    app.steps["consumer"].add(StallGuard)
app.steps["consumer"].add(LeakAcks)


@app.task(name="stall.record")
def record(tag: str) -> None:
    redis.Redis.from_url(BROKER).rpush("done", tag)
