"""Liveness and readiness for load balancers and docker-compose health checks."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, current_app, jsonify
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from tasks.celery_app import sentinel_transport_options
from workflow.heartbeats import beat_age, live_workers
from workflow.redis_client import connect
from workflow.settings import Settings

health = Blueprint("health", __name__)
# A worker or beat not heard from in this many sweep intervals is taken for gone.
STALE_INTERVALS = 3
BROKER_TIMEOUT_SECONDS = 1.0


@health.get("/healthz")
def healthz():
    """Liveness only: the process answers. Whether it can serve is /readyz's question, so a
    Redis outage never gets a web process restarted for nothing."""
    return jsonify({"status": "alive"})


@health.get("/readyz")
def readyz():
    """Ready when Redis and the broker answer, a worker ran beat's last sweeps and beat is
    sending them; 503 with what failed otherwise. Reads two keys: milliseconds."""
    body = readiness(
        current_app.extensions.get("health_redis") or current_app.extensions["redis"],
        current_app.extensions["xinbao_settings"],
        current_app.config["CELERY"].get("broker_url", ""),
    )
    return jsonify(body), 200 if body["status"] == "ready" else 503


CHECKS = ("redis", "broker", "workers", "beat")


def health_client(settings: Settings, url: str | None = None) -> Any:
    """The Redis client readiness is asked through: a check must answer, not wait on a Redis
    that accepts connections but never replies (the app's client waits 10 s a command,
    retried), so a short timeout and no retry."""
    return connect(
        settings,
        url,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def readiness(
    redis: Any, settings: Settings, broker_url: str, only: Iterable[str] = CHECKS
) -> dict[str, Any]:
    """Each check's answer ("ok" or why not), the workers heard from, and "status": "ready"
    when every check asked for (``only``) is ok."""
    only = tuple(only)
    stale = STALE_INTERVALS * max(settings.sweep_interval_seconds, 10.0)
    checks: dict[str, Any] = dict.fromkeys(CHECKS, "ok")
    now = time.time()
    try:
        redis.ping()
        workers = live_workers(redis, now, stale)
        if not workers:
            checks["workers"] = f"none ran a sweep in the last {stale:.0f} s"
        age = beat_age(redis, now)
        if age is None:
            checks["beat"] = "never heard from"
        elif age > stale:
            checks["beat"] = f"last sweep sent {age:.0f} s ago"
    except Exception as exc:  # noqa: BLE001 - Redis down: nothing else can be read either
        checks.update(redis=f"unavailable: {exc}", workers="unknown", beat="unknown")
        workers = []
    if "broker" in only:
        checks["broker"] = _broker(broker_url, settings)
    checks = {name: checks[name] for name in only}
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", **checks, "worker_hosts": workers}


def _broker(url: str, settings: Settings) -> str:
    if not url or url.startswith("memory://"):
        return "ok"  # in-process (tests): nothing to reach
    # A sentinel:// broker needs the primary's name the workers use (tasks/celery_app.py).
    options = sentinel_transport_options(settings) if url.startswith("sentinel://") else {}
    # connect_timeout alone bounds only the TCP connect: a broker that accepts and then says
    # nothing would hold the check forever.
    options = {
        **options,
        "socket_timeout": BROKER_TIMEOUT_SECONDS,
        "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
    }
    try:
        with Connection(
            url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means the broker cannot be reached
        return f"unavailable: {exc}"
