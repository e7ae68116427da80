"""Liveness and readiness for load balancers and docker-compose health checks."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, has_app_context, jsonify
from kombu import Connection

from tasks.celery_app import sentinel_transport_options
from workflow.heartbeats import beat_age, live_workers
from workflow.settings import load_settings

health = Blueprint("health", __name__)
# A worker or beat not heard from in this many sweep intervals is taken for gone.
STALE_INTERVALS = 3
BROKER_TIMEOUT_SECONDS = 1.0


@health.get("/healthz")
def healthz():
    try:
        current_app.extensions["redis"].ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return jsonify({"status": "unavailable", "redis": str(exc)}), 503
    return jsonify({"status": "ok", "redis": "ok"})


@health.get("/readyz")
def readyz():
    """Ready when Redis and the broker answer, a worker ran beat's last sweeps and beat is
    sending them; 503 with what failed otherwise. Reads two keys: milliseconds."""
    settings = current_app.extensions["xinbao_settings"]
    redis = current_app.extensions["redis"]
    stale = STALE_INTERVALS * max(settings.sweep_interval_seconds, 10.0)
    checks: dict[str, Any] = {"redis": "ok", "broker": "ok", "workers": "ok", "beat": "ok"}
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
    checks["broker"] = _broker(current_app.config["CELERY"].get("broker_url", ""))
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", **checks, "worker_hosts": workers}
    return jsonify(body), 200 if ready else 503


def _broker(url: str) -> str:
    if not url or url.startswith("memory://"):
        return "ok"  # in-process (tests): nothing to reach
    # A sentinel:// broker needs the primary's name the workers use (tasks/celery_app.py).
    settings = current_app.extensions["xinbao_settings"] if has_app_context() else load_settings()
    options = sentinel_transport_options(settings) if url.startswith("sentinel://") else {}
    try:
        with Connection(
            url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means the broker cannot be reached
        return f"unavailable: {exc}"
