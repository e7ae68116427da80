"""The worker's stall guard: a consumer that stops taking tasks while some wait reconnects."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis

from tasks.stall_guard import StallCheck
from tests.support import ROOT, wait_until


def test_idle_consumer_with_tasks_waiting_is_stalled_after_the_window():
    check = StallCheck(checks=3)
    assert not check.observe(received=5, waiting=4, busy=0, processes=2)  # first look
    assert not check.observe(received=5, waiting=4, busy=0, processes=2)
    assert not check.observe(received=5, waiting=4, busy=1, processes=2)
    assert check.observe(received=5, waiting=4, busy=0, processes=2)


@pytest.mark.parametrize(
    "later",
    [
        {"received": 6, "waiting": 4, "busy": 0},  # it took a task: not stalled
        {"received": 5, "waiting": 0, "busy": 0},  # nothing waits
        {"received": 5, "waiting": 4, "busy": 2},  # every process is busy: waiting is right
    ],
)
def test_progress_an_empty_queue_or_a_full_pool_restart_the_window(later):
    check = StallCheck(checks=2)
    check.observe(received=5, waiting=4, busy=0, processes=2)
    check.observe(received=5, waiting=4, busy=0, processes=2)
    assert not check.observe(**later, processes=2)
    assert not check.observe(received=later["received"], waiting=4, busy=0, processes=2)


def _run_worker(url: str, guard: bool, tmp_path) -> tuple[int, str]:
    """Start a real worker, stall its consumer once it has taken a first task, queue ten more
    and return how many of those it ran within 8 s, and its log."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = {**os.environ, "STALL_BROKER": url, "STALL_GUARD": "1" if guard else "0",
           "PYTHONPATH": str(ROOT)}
    log = tmp_path / f"worker-{guard}.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.tasks.stall_worker", "worker",
             "--concurrency", "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--hostname", f"stall-{guard}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        from tests.tasks import stall_worker

        stall_worker.app.conf.broker_url = url
        stall_worker.record.delay("first")
        wait_until(lambda: client.llen("done") == 1, 30, what="the worker's first task")
        client.set("leak", 1)
        wait_until(lambda: not client.exists("leak"), 10, what="the leak")
        for i in range(10):
            stall_worker.record.delay(f"after-{i}")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and client.llen("done") < 11:
            time.sleep(0.1)
        return client.llen("done") - 1, log.read_text()
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.mark.integration
def test_a_stalled_worker_reconnects_and_takes_the_waiting_tasks(redis_server_url, tmp_path):
    ran, log = _run_worker(redis_server_url, guard=True, tmp_path=tmp_path)
    assert ran == 10, log[-3000:]
    assert "consumer stalled" in log


@pytest.mark.integration
def test_without_the_guard_the_same_stall_strands_the_tasks(redis_server_url, tmp_path):
    # What the guard is for: the same leak, no guard, nothing taken.
    ran, _ = _run_worker(redis_server_url, guard=False, tmp_path=tmp_path)
    assert ran == 0
