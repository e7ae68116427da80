"""Every log line is one JSON object carrying its ids: a request's id reaches the tasks it
causes, in-process (Celery eager) and through a real worker process (message headers)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import BIN, ROOT, free_port, wait_until
from tests.web.conftest import auth, deal_body
from workflow.logs import JsonFormatter, bound, configure_logging


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the root logger's JSON handler (the one every entry point installs) writes."""
    configure_logging()
    root = logging.getLogger()
    handler = next(h for h in root.handlers if isinstance(h.formatter, JsonFormatter))
    out = io.StringIO()
    previous = handler.setStream(out)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        yield out
    finally:
        handler.setStream(previous)
        logging.getLogger().setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n")
    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    for entry in entries:
        assert {"ts", "level", "logger", "msg"} <= set(entry), entry
    return entries


def test_a_request_id_reaches_the_tasks_it_causes(client, api, lines):
    rv = client.post("/api/v1/deals", json=deal_body(), headers={**auth("haixin"),
                                                                 "X-Request-ID": "req-A.1"})
    assert rv.status_code == 202
    assert rv.headers["X-Request-ID"] == "req-A.1"
    deal_id = rv.get_json()["id"]
    decided = client.post(f"/api/v1/deals/{deal_id}/decision", json={"decision": "decline",
                          "reason": "no"}, headers={**auth("boc"), "X-Request-ID": "req-B"})
    assert decided.status_code == 200
    entries = parsed(lines)
    submit = [e for e in entries if e.get("request_id") == "req-A.1"]
    decide = [e for e in entries if e.get("request_id") == "req-B"]
    assert submit and decide and len(submit) + len(decide) == len(entries)
    assert all(e["exporter"] == "91330200MA2AB1C2DJ" for e in submit)
    assert all(e["bank_id"] == "BOC-NB" for e in decide)
    drained = [e for e in submit if e.get("task_name") == "xinbao.drain_ready"]
    routed = [e for e in decide if e.get("task_name") == "xinbao.route"]
    assert drained and routed
    assert all(e["task_id"] for e in drained + routed)
    # A drain serves many deals: its lines about one name it (Celery's summary does not).
    assert all(e["deal_id"] == deal_id for e in drained if e["logger"] == "xinbao.workflow")
    assert all(e["deal_id"] == deal_id for e in routed)  # a deal's own task: every line
    assert any(e.get("to_state") == "pending_bank" for e in drained)
    assert any(e.get("to_state") == "pending_bank" for e in routed)


def test_a_drain_logs_each_deal_with_the_request_that_submitted_it(app, lines):
    from tasks.pipeline import drain_ready
    from tests.conftest import make_application, make_invoice

    flow = app.extensions["xinbao"]
    submitted = {}
    for request_id, number in (("req-one", "INV-HX-1001"), ("req-two", "INV-HX-1002")):
        with bound(request_id=request_id):  # as the web binds it for a request
            app_ = make_application(invoices=[make_invoice(number=number)])
            submitted[flow.submit(app_).deal.id] = request_id
    with app.app_context(), bound(request_id="req-drain"):
        assert drain_ready.apply().get() == 2
    moves = [e for e in parsed(lines) if e.get("to_state") == "pending_bank"]
    assert {e["deal_id"]: e["request_id"] for e in moves} == submitted


@pytest.mark.parametrize("sent", ["", "a b", "x" * 65, 'x"} {"level":"ERROR"', "ü"])
def test_an_unfit_request_id_is_replaced(client, sent, lines):
    rv = client.get("/healthz", headers={"X-Request-ID": sent})
    given = rv.headers["X-Request-ID"]
    assert given != sent and len(given) == 32 and given.isalnum()


# --- a real worker process --------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.integration
def test_a_real_worker_logs_json_with_the_request_id(real_redis, redis_server_url, tmp_path,
                                                     demo_reference):
    from web import create_app
    from workflow.reference import store_reference
    from workflow.settings import load_settings

    url = real_redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    store_reference(real_redis, demo_reference)
    metrics_port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
           "XINBAO_WORKER_METRICS_PORT": str(metrics_port)}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "tasks.worker", "worker", "--loglevel",
             "INFO", "--concurrency", "1", "--without-gossip", "--without-mingle",
             "--hostname", "logs@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: b"ready" in log_path.read_bytes(), 60, what="celery worker")
        app = create_app(load_settings({"REDIS_URL": redis_url}), redis_client=real_redis)
        client = app.test_client()
        rv = client.post("/api/v1/deals", json=deal_body(),
                         headers={**auth("haixin"), "X-Request-ID": "real-req-1"})
        assert rv.status_code == 202, rv.get_json()
        deal_id = rv.get_json()["id"]
        wait_until(lambda: _finished(log_path, "xinbao.drain_ready"), 60, what="the drain")
        # The pool process's metrics, served by the worker's main process.
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    text = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in text if not _celery_says(line)]
    about = [e for e in entries if e.get("deal_id") == deal_id]
    assert about, entries
    for entry in about:
        assert entry["request_id"] == "real-req-1", entry
        assert entry["task_name"] == "xinbao.drain_ready" and entry["task_id"], entry
    # Celery's own line about the drain carries the id from the message headers.
    done = [e for e in entries if e["logger"] == "celery.app.trace"]
    assert done and all(e["request_id"] == "real-req-1" for e in done), done
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(scraped) for s in f.samples}
    drains = ("xinbao_task_duration_seconds_count",
              (("state", "SUCCESS"), ("task", "xinbao.drain_ready")))
    assert samples[drains] >= 1
    created = ("xinbao_transitions_total", (("from_state", "submitted"),
                                            ("to_state", "verifying")))
    assert samples[created] == 1


def _celery_says(line: str) -> bool:
    """The one thing Celery prints itself, not through logging: its shutdown notice."""
    return not line.strip() or (line.startswith("worker: ") and "shutdown" in line)


def _finished(path: Path, task: str) -> bool:
    return any(f"Task {task}" in line and "succeeded" in line
               for line in path.read_text().splitlines())
