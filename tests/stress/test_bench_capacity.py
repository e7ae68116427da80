"""The capacity bench run small so it cannot rot: it measures, records, replays and prints
every figure; and the MONITOR parsing and templating it rests on."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.stress import bench_capacity as bc
from tests.stress import dataset


def test_monitor_lines_are_parsed_back_to_the_bytes_sent():
    lines = [
        '1795675754.1 [0 127.0.0.1:5000] "LLEN" "celery\\x06\\x163"',
        '1795675754.2 [0 lua] "hset" "h" "f" "v"',  # inside a script: part of its EVALSHA
        '1795675754.3 [0 127.0.0.1:6000] "GET" "bench-own"',
        '1795675754.4 [0 127.0.0.1:5000] "SET" "k" "a \\"quoted\\"\\nline\\\\"',
        '1795675754.5 [0 127.0.0.1:5000] "SCRIPT" "LOAD" "return 1"',
    ]
    commands, scripts = bc.parse_monitor(lines, "127.0.0.1:6000")
    assert commands == [
        [b"LLEN", b"celery\x06\x163"],
        [b"SET", b"k", b'a "quoted"\nline\\'],
        [b"SCRIPT", b"LOAD", b"return 1"],
    ]
    assert list(scripts.values()) == [b"return 1"]


def test_a_transition_is_replayed_as_a_first_write_on_random_keys():
    deal_id, index = "0123456789abcdef0123", 7
    event = json.dumps({"type": "approved", "set": {"id": deal_id}}).encode()
    recorded = [
        b"EVALSHA",
        bc.TRANSITION_SHA.encode(),
        b"3",
        f"xb:deal:{{{deal_id}}}".encode(),
        f"xb:recv:X:{dataset.invoice_number(index)}".encode(),
        f"xb:idem:{dataset.EXPORTER}:b{index}".encode(),
        b"4",
        b"pending_bank",
        b"1",
        event,
    ]
    plain = [b"GET", b"xb:token:abc"]
    groups = {
        g.name: g for g in bc.build_groups([recorded, plain, [b"MULTI"]], {}, {deal_id: index})
    }
    assert set(groups) == {"transition:approved", "GET", "PING"}
    template = groups["transition:approved"].template
    assert template[3:6] == [
        b"xb:deal:{__rand_int__}",
        b"xb:recv:X:ST-__rand_int__",
        f"xb:idem:{dataset.EXPORTER}:b__rand_int__".encode(),
    ]
    assert template[6:8] == [b"0", b""] and deal_id.encode() not in b"".join(template)
    assert groups["transition:approved"].space == bc.WRITE_SPACE
    assert groups["GET"].template == plain and groups["GET"].space == 0
    assert groups["PING"].template == [b"PING"]


@pytest.mark.redis
@pytest.mark.integration
def test_a_tiny_run_prints_every_figure(tmp_path):
    if not shutil.which("redis-benchmark") or not shutil.which("redis-server"):
        pytest.skip("no redis-benchmark / redis-server on PATH")
    lines: list[str] = []
    figures = bc.run(
        deals=12,
        closed=4,
        monitored=3,
        requests_=300,
        appendfsync="everysec",
        work=tmp_path,
        emit=lines.append,
    )
    for name in (
        "web_deals_per_core",
        "web_lifecycle_per_core",
        "worker_deals_per_core",
        "end_to_end_per_s",
        "redis_us_per_deal",
        "redis_cpu_bound_per_s",
        "commands_per_deal",
        "replay_ops_per_s",
        "replay_deals_per_s",
        "replay_unpipelined_deals_per_s",
        "primary_deals_per_s",
    ):
        assert figures[name] > 0, name
    # Memory per deal is measured too, but a dozen deals cannot carry it: Redis's own fixed
    # costs and allocator steps swamp them (docs/capacity.md reads it from 2,000).
    assert all(math.isfinite(figures[name]) for name in ("bytes_pending", "bytes_repaid"))
    assert figures["commands_per_deal"] > 7  # at least the seven transitions of a whole life
    assert lines[0].startswith("capacity: POST -> pending_bank, 12 deals")
    assert lines[1].startswith("capacity: pending_bank -> approved -> disbursed -> repaid, 4")
    assert "commands per deal in" in lines[2] and "transition:" in lines[2]
    assert lines[-1] == "capacity: " + " ".join(f"{k}={v:.1f}" for k, v in figures.items())
