"""The desk pages' bench code, run small so it cannot rot: seeding, sign-in, one timed request."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.stress import bench_pages as bp
from workflow import keys
from workflow.settings import load_settings
from workflow.states import State

pytestmark = pytest.mark.redis


def test_seeded_queue_is_real_deals_and_the_pages_render_them(real_redis):
    now = datetime.now(UTC)
    bp.load_demo(real_redis, now.date())
    app = bp.desk_app(real_redis, load_settings({}))
    template = bp.real_deal(app.extensions["xinbao"], now.date())
    bp.seed_queue(real_redis, template, 1, 30, now)

    queue = keys.bank_queue(bp.BANK)
    assert real_redis.zcard(queue) == 30
    for index in (keys.deadlines(), keys.by_state(State.PENDING_BANK), keys.by_bank(bp.BANK)):
        assert real_redis.zcard(index) == 30, index
    original = real_redis.hgetall(keys.deal(template))
    clone_id = bp.clone_id(7)
    clone = real_redis.hgetall(keys.deal(clone_id))
    deadline = clone.pop("deadline")
    assert clone == {
        k: (clone_id if k == "id" else v) for k, v in original.items() if k != "deadline"
    }
    assert real_redis.zscore(queue, clone_id) == pytest.approx(
        datetime.fromisoformat(deadline).timestamp(), abs=0.001
    )
    events = [json.loads(e) for e in real_redis.lrange(keys.events(clone_id), 0, -1)]
    assert [e["type"] for e in events] == [
        "submitted", "verification_started", "verified", "offered_to_bank"
    ]
    assert events[0]["set"]["id"] == clone_id and events[-1]["set"]["deadline"] == deadline

    client = bp.signed_in(app)
    first = bp.queue_rows(bp.fetch(client, "/bank/"))
    by_deadline = real_redis.zrange(queue, 0, 24)
    assert first == by_deadline  # most urgent first, a full page
    assert bp.queue_rows(bp.fetch(client, "/bank/?page=2")) == real_redis.zrange(queue, 25, -1)
    html = bp.fetch(client, f"/bank/deals/{clone_id}")
    assert "Müller Handels GmbH" in html and "INV-HX-1001" in html
    for _label, url in bp.pages(30):
        times, cpu_ms = bp.timed(client, url, count=1, warmup=0)
        assert len(times) == 1 and cpu_ms >= 0


def test_verdict_reads_the_goal_size_only():
    fast = bp.Result(bp.GOAL_SIZE, "queue", "/bank/", [1.0] * 20, 1.0)
    slow_small = bp.Result(10, "queue", "/bank/", [99.0] * 20, 1.0)
    assert bp.verdict([fast, slow_small]) == (1.0, True)
    slow = bp.Result(bp.GOAL_SIZE, "deal", "/bank/deals/x", [10.0] * 18 + [60.0] * 2, 1.0)
    assert bp.verdict([fast, slow]) == (60.0, False)
    assert bp.verdict([slow_small]) == (pytest.approx(float("nan"), nan_ok=True), False)
    assert "not measured" in bp.verdict_line([slow_small])
    assert bp.verdict_line([fast]).endswith("PASS") and bp.verdict_line([slow]).endswith("FAIL")
