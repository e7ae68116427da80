"""The benchmark's baseline: a bare Celery app of no-op tasks with Xinbao's worker settings."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery, chain

from tasks.celery_app import celery_config
from workflow.settings import load_settings

DONE_KEY = "bench:bare:done"
QUEUE = "bare"


def worker_config(queue: str) -> dict[str, Any]:
    """Xinbao's Celery settings (acks late, prefetch, visibility timeout...) without its beat
    schedule, publishing to ``queue``: the baselines' workers run as Xinbao's do."""
    config = {k: v for k, v in celery_config(load_settings()).items() if k != "beat_schedule"}
    return {**config, "task_default_queue": queue}


_settings = load_settings()
app = Celery("bare")
app.config_from_object(worker_config(QUEUE))
_redis = redis.Redis.from_url(_settings.redis_url)


@app.task(name="bare.noop")
def noop(*_args: object) -> None:
    return None


@app.task(name="bare.done")
def done(*_args: object) -> None:
    _redis.incr(DONE_KEY)


def submit(chains: int, hops: int) -> None:
    """Publish ``chains`` chains of ``hops`` tasks each, the last counting itself done."""
    signature = chain(*[noop.si() for _ in range(hops - 1)], done.si()) if hops > 1 else done.si()
    for _ in range(chains):
        signature.apply_async()
