"""The shared fixtures do what the other suites rely on."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import DEMO_NOW, Clock, make_application
from workflow.pipeline import Workflow


def test_private_redis_is_not_the_shared_instance(redis_server_url, real_redis):
    parts = urlsplit(redis_server_url)
    assert (parts.hostname, parts.port) != ("127.0.0.1", 6379)
    assert real_redis.ping()
    assert real_redis.dbsize() == 0
    real_redis.set("xb:fixture-probe", "1")


def test_real_redis_is_flushed_between_tests(real_redis):
    assert real_redis.get("xb:fixture-probe") is None


def test_fake_redis_is_fresh_per_test(fake_redis):
    assert fake_redis.dbsize() == 0
    fake_redis.set("xb:fixture-probe", "1")


def test_fake_redis_again(fake_redis):
    assert fake_redis.dbsize() == 0


def test_any_redis_decodes_responses(any_redis):
    any_redis.set("k", "v")
    assert any_redis.get("k") == "v"


def test_make_workflow(fake_redis, make_workflow):
    wf = make_workflow(fake_redis)
    assert isinstance(wf, Workflow)
    assert wf.clock() == DEMO_NOW
    assert [b.bank_id for b in wf.reference.banks()] == ["BOC-NB", "CCB-NB", "ICBC-NB"]
    fixed = make_workflow(fake_redis, clock=lambda: DEMO_NOW)
    assert fixed.clock() == DEMO_NOW


def test_clock_advances():
    clock = Clock()
    clock.advance(hours=1)
    assert (clock() - DEMO_NOW).total_seconds() == 3600


def test_make_application_rejects_unknown_fields():
    with pytest.raises(TypeError):
        make_application(colour="red")
    with pytest.raises(TypeError):
        make_application(number="X", invoices=[{}])
