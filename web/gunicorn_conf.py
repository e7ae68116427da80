"""Gunicorn settings for Xinbao (``gunicorn -c python:web.gunicorn_conf``): threaded workers,
its own and its access log lines as JSON through the app's logging, and Prometheus
multiprocess bookkeeping. Bind address and worker count stay on the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from workflow.logs import configure_logging

# The app answers every request with its id (web/request_ids.py); the access line repeats it.
REQUEST_ID_HEADER = "x-request-id"


class JsonLogger(Logger):
    """Gunicorn's logger with its handlers removed: its lines go to the root logger's JSON
    handler, and each access is one line with its fields (never a formatted string)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging()
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in (resp.headers or [])}
        status = resp.status_code if resp.status_code is not None else resp.status
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        extra = {
            "method": method,
            "path": path,
            "status": int(str(status).split(None, 1)[0]) if status else None,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "bytes": getattr(resp, "sent", None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        if REQUEST_ID_HEADER in headers:
            extra["request_id"] = headers[REQUEST_ID_HEADER]
        self.access_log.info("%s %s %s", method, path, extra["status"], extra=extra)


# Threads: a request spends most of its time waiting for Redis (every write waits for its
# fsync), which another thread's request can use; and a client's connection is kept alive
# between requests instead of one TCP connection per request (the sync worker's way).
# docs/performance.md measures it. WEB_THREADS sets the threads per worker process.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 4)

# Access lines only with --access-logfile (any value: they go where every line goes), as
# gunicorn's own default; docker-compose turns them on, the benchmarks leave them off.
logger_class = JsonLogger


def _multiproc_dir() -> Path | None:
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


def on_starting(server: Any) -> None:
    """A fresh start: metric files of a previous run's processes would add to this one's."""
    path = _multiproc_dir()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    server.log.info("prometheus multiprocess directory %s emptied", path)


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges go; its counters and histograms stay in the totals."""
    if _multiproc_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
