"""Beat sweeps log only when they act: Celery's routine lines about idle sweeps are dropped."""

from __future__ import annotations

import logging

import pytest
from celery.app import trace

from tasks.celery_app import quiet_sweep_logs


@pytest.fixture(autouse=True)
def _quiet():
    quiet_sweep_logs()


def _succeeded(name: str, value: object) -> None:
    trace.info(trace.LOG_SUCCESS, {"id": "t1", "name": name, "return_value": value,
                                   "runtime": 0.001, "args": "()", "kwargs": "{}"})


def _received(name: str) -> None:
    logging.getLogger("celery.worker.strategy").info(
        trace.LOG_RECEIVED, {"id": "t1", "name": name},
        extra={"data": {"id": "t1", "name": name}})


def test_idle_sweeps_are_silent(caplog):
    caplog.set_level(logging.INFO)
    for name in ("xinbao.sweep_deadlines", "xinbao.sweep_stranded", "xinbao.lapse_approvals"):
        _received(name)
        _succeeded(name, 0)
    assert caplog.records == []


def test_a_sweep_that_acted_and_other_tasks_are_logged(caplog):
    caplog.set_level(logging.INFO)
    _succeeded("xinbao.sweep_stranded", 3)
    _received("xinbao.verify")
    _succeeded("xinbao.verify", "pending_bank")
    assert len(caplog.records) == 3


def test_beat_does_not_announce_each_sweep(caplog):
    caplog.set_level(logging.INFO)
    beat = logging.getLogger("celery.beat")
    beat.info("Scheduler: Sending due task %s (%s)", "expire-bank-deadlines",
              "xinbao.sweep_deadlines")
    assert caplog.records == []
    beat.info("Scheduler: Sending due task %s (%s)", "something-else", "other.task")
    assert len(caplog.records) == 1


def test_a_sweep_retrying_after_a_transport_error_is_still_logged(caplog):
    """Celery announces each retry at INFO, with the task's name and no return value: a
    sweeper that cannot reach Redis must not be silent until its retries are spent."""
    caplog.set_level(logging.INFO)
    trace.info(trace.LOG_RETRY, {
        "id": "t1", "name": "xinbao.sweep_deadlines",
        "exc": "Retry in 2s: ConnectionError('Error 111 connecting to redis:6379.')",
    })
    assert [r.getMessage() for r in caplog.records], "the sweep's retry was swallowed"
