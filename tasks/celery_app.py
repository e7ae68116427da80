"""Builds the Celery app from a Flask app (the pallets/flask ``examples/celery`` pattern)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from celery.app import trace
from celery.signals import before_task_publish
from flask import Flask
from kombu import Queue

from tasks.observability import connect_signals
from tasks.stall_guard import StallGuard
from workflow.heartbeats import record_beat
from workflow.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: at-least-once delivery and idempotent tasks, beat sweeps from Redis."""
    sweep = timedelta(seconds=settings.sweep_interval_seconds)
    hooks = timedelta(seconds=settings.webhook_dispatch_seconds)
    schedule = {
        # A sweep stuck behind a backlog is dropped: the next one does the same work.
        name: {"task": task, "schedule": every, "options": {"expires": every.total_seconds()}}
        for name, task, every in (
            ("expire-bank-deadlines", "xinbao.sweep_deadlines", sweep),
            ("redispatch-stranded-deals", "xinbao.sweep_stranded", sweep),
            ("lapse-undisbursed-approvals", "xinbao.lapse_approvals", sweep),
            ("sweep-arrears", "xinbao.sweep_arrears", sweep),
            ("report-limit-usage", "xinbao.report_limit_usage", sweep),
            ("dispatch-webhooks", "xinbao.dispatch_webhooks", hooks),
        )
    }
    return {
        "broker_url": settings.broker_url,
        "task_ignore_result": True,
        # A task is acknowledged only after it ran; a worker lost mid-task gets it redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            # Above the longest retry countdown, so Redis never redelivers a task still waiting.
            "visibility_timeout": settings.visibility_timeout_seconds,
            **sentinel_transport_options(settings),
        },
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        # A step that hangs (e.g. on a stuck insurer call) is stopped; the sweeper retries it.
        "task_soft_time_limit": 120,
        "task_time_limit": 180,
        # tasks/stall_guard.py: a consumer idle for this many checks while tasks wait reconnects.
        "xinbao_stall_check_seconds": settings.stall_check_seconds,
        "xinbao_stall_checks": 3,
        "beat_schedule": schedule,
        # Webhook deliveries wait on banks' endpoints: their own queue, so a slow endpoint
        # never holds up the deal pipeline's tasks. A worker started without -Q takes both;
        # production runs a worker per queue (docker-compose.yml).
        "task_queues": (Queue("celery"), Queue("webhooks")),
        "task_routes": {"xinbao.deliver_webhook": {"queue": "webhooks"}},
    }


def sentinel_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's options for a ``sentinel://`` broker: the primary's name and how to log in to
    the sentinels; none without sentinels."""
    if not settings.broker_url.startswith("sentinel://"):
        return {}
    options: dict[str, Any] = {"master_name": settings.redis_sentinel_master}
    if settings.redis_sentinel_password:
        options["sentinel_kwargs"] = {"password": settings.redis_sentinel_password}
    return options


# Beat sends these every few seconds; their tasks log themselves when they act, so Celery's
# own "sending", "received" and "succeeded: 0" lines for them are noise at INFO.
QUIET_TASKS = frozenset(
    {
        "xinbao.sweep_deadlines",
        "xinbao.sweep_stranded",
        "xinbao.lapse_approvals",
        "xinbao.sweep_arrears",
        "xinbao.report_limit_usage",
        "xinbao.dispatch_webhooks",
    }
)


class QuietSweeps(logging.Filter):
    """Drops Celery's routine INFO lines about sweeps that found nothing to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        data = getattr(record, "data", None)
        if isinstance(data, dict) and data.get("name") in QUIET_TASKS:
            # Only "received" and "succeeded: 0" (it moved no deal) are routine; a retry or
            # anything else about a sweep is news.
            if record.msg == trace.LOG_RECEIVED:
                return False
            if record.msg == trace.LOG_SUCCESS:
                return str(data.get("return_value")) not in ("0", "None")
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.name == "celery.beat" and len(args) == 2 and args[1] in QUIET_TASKS)


def quiet_sweep_logs() -> None:
    """Install :class:`QuietSweeps` on the loggers Celery writes those lines to (idempotent)."""
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietSweeps) for f in logger.filters):
            logger.addFilter(QuietSweeps())


# The Redis client of the app this process built last (beat builds one): where beat's heartbeat
# goes. One receiver per process, whatever the number of apps built (tests build many).
_beat_redis: list[Any] = []


def _beat_sent(sender: str | None = None, **_: object) -> None:
    """Only beat sends the sweeps: each one sent is its heartbeat for the readiness check."""
    if sender in QUIET_TASKS and _beat_redis:
        try:
            record_beat(_beat_redis[0], time.time())
        except Exception:  # noqa: BLE001 - a heartbeat never stops a sweep being sent
            logging.getLogger("xinbao.beat").warning("beat heartbeat not recorded")


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside ``app``'s application context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.steps["consumer"].add(StallGuard)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    quiet_sweep_logs()
    connect_signals()
    _beat_redis[:] = [app.extensions["redis"]] if "redis" in app.extensions else []
    before_task_publish.connect(_beat_sent, weak=False, dispatch_uid="xinbao-beat-heartbeat")
    # Import for the side effect of registering the shared tasks with this app.
    import tasks.pipeline  # noqa: F401
    import tasks.webhooks  # noqa: F401

    return celery_app
