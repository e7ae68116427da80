"""Celery's part in metrics and logs: task latency, retries and failures from Celery's signals,
the request id carried in each task message's headers, the ids on every worker log line, and
a worker's own /metrics port for hosts the web's scrape cannot see."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import (
    before_task_publish,
    celeryd_after_setup,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    worker_init,
    worker_process_shutdown,
)
from prometheus_client import Counter, Histogram

from workflow.logs import bind, configure_logging, current_request_id, sane_request_id, unbind
from workflow.metrics import event_registry, multiprocess_dir

log = logging.getLogger("xinbao.tasks")

# Message headers Xinbao adds to every task it publishes.
REQUEST_HEADER = "xinbao_request_id"
PUBLISHED_HEADER = "xinbao_published_at"
# Tasks whose first argument is a deal id: their log lines name the deal.
DEAL_TASKS = frozenset({"xinbao.verify", "xinbao.route", "xinbao.settle_claim"})

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TASK_SECONDS = Histogram(
    "xinbao_task_duration_seconds",
    "Task run time in a worker, by task and final state (SUCCESS, RETRY, FAILURE).",
    ["task", "state"],
    buckets=LATENCY_BUCKETS,
)
TASK_QUEUED_SECONDS = Histogram(
    "xinbao_task_queue_seconds",
    "Time from a task's publication to the start of its run (clocks of two hosts).",
    ["task"],
    buckets=LATENCY_BUCKETS,
)
TASK_RETRIES = Counter("xinbao_task_retries", "Task retries scheduled.", ["task"])
TASK_FAILURES = Counter("xinbao_task_failures", "Tasks that ended in an exception.", ["task"])

# task id -> (start, context token): what task_postrun closes. One entry per running task.
_running: dict[str, tuple[float, Any]] = {}


def _published(headers: dict | None = None, **_: object) -> None:
    if headers is None:
        return
    request_id = current_request_id()
    if request_id:
        headers.setdefault(REQUEST_HEADER, request_id)
    headers.setdefault(PUBLISHED_HEADER, time.time())


def _started(task_id: str = "", task: Any = None, args: tuple = (), **_: object) -> None:
    if task is None:
        return
    request = task.request
    # Eager runs (tests) have no message headers: the caller's own context carries on.
    request_id = sane_request_id(str(request.get(REQUEST_HEADER) or "")) or current_request_id()
    deal_id = args[0] if task.name in DEAL_TASKS and args else None
    token = bind(task_id=task_id, task_name=task.name, request_id=request_id, deal_id=deal_id)
    _running[task_id] = (time.monotonic(), token)
    published = request.get(PUBLISHED_HEADER)
    if isinstance(published, int | float):
        TASK_QUEUED_SECONDS.labels(task.name).observe(max(time.time() - published, 0.0))


def _finished(task_id: str = "", task: Any = None, state: str | None = None, **_: object) -> None:
    started = _running.pop(task_id, None)
    if started is None:
        return
    begun, token = started
    if task is not None:
        TASK_SECONDS.labels(task.name, state or "UNKNOWN").observe(time.monotonic() - begun)
    unbind(token)


def _retried(request: Any = None, sender: Any = None, **_: object) -> None:
    name = getattr(sender, "name", None) or getattr(request, "task", None) or "unknown"
    TASK_RETRIES.labels(name).inc()


def _failed(sender: Any = None, **_: object) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", None) or "unknown").inc()


def _logging(loglevel: Any = None, **_: object) -> None:
    """Connected, this stops Celery configuring logging itself: its lines go out as JSON too."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    configure_logging(level or None)


def _banner(instance: Any = None, **_: object) -> None:
    """The worker's start-up banner as one JSON line instead of lines of ASCII art."""
    if instance is None:
        return
    instance.quiet = True
    try:
        info = instance.startup_info(artlines=False)
    except Exception:  # noqa: BLE001 - the banner is a courtesy
        return
    log.info("worker %s starting", instance.hostname, extra={"startup": info.strip()})


def _worker_started(**_: object) -> None:
    """With XINBAO_WORKER_METRICS_PORT, the worker's main process serves its pool's metrics
    (for a worker on a host the web's scrape does not share a multiprocess directory with)."""
    path = multiprocess_dir()
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
    port = os.environ.get("XINBAO_WORKER_METRICS_PORT")
    if not port:
        return
    if path:
        # A worker serving its own port owns its directory (one per worker host or container):
        # files of a previous run would add to this one's.
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        log.warning(
            "XINBAO_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: without it the pool's "
            "processes keep their metrics to themselves"
        )
    from prometheus_client import start_http_server

    start_http_server(
        int(port),
        addr=os.environ.get("XINBAO_WORKER_METRICS_ADDR", "0.0.0.0"),
        registry=event_registry(),
    )
    log.info("worker metrics on port %s", port)


def _process_ended(**_: object) -> None:
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def connect_signals() -> None:
    """Connect the handlers once per process, however many Celery apps are built."""
    for signal, handler in (
        (before_task_publish, _published),
        (task_prerun, _started),
        (task_postrun, _finished),
        (task_retry, _retried),
        (task_failure, _failed),
        (setup_logging, _logging),
        (celeryd_after_setup, _banner),
        (worker_init, _worker_started),
        (worker_process_shutdown, _process_ended),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"xinbao-obs-{handler.__name__}")
