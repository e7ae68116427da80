"""The naive baseline and the scaling part of `make bench`, run small so they cannot rot: the
naive app takes the same deals to its result through a real worker, refuses what Xinbao's
schema refuses, and both bench parts print every figure (no timing is asserted)."""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from tests.stress import bench, bench_naive, bench_scaling, dataset

needs_redis_server = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="no redis-server on PATH"),
]


def _needs_redis_server(test):
    for mark in needs_redis_server:
        test = mark(test)
    return test


def test_the_multi_invoice_series_never_shares_an_invoice_and_keeps_one_buyer():
    seen: set[int] = set()
    for deal in range(40):
        indexes = dataset.invoice_indexes(60, deal, 10)
        assert len({dataset.buyer_of(i) for i in indexes}) == 1
        assert not seen & set(indexes)
        seen |= set(indexes)
    assert seen == set(range(60, 60 + 40 * 10))
    body = dataset.multi_invoice_body(dataset.invoice_indexes(60, 3, 10))
    assert len(body["invoices"]) == 10 and body["requested_amount"] == "100000.00"


@_needs_redis_server
def test_naive_deals_reach_their_result_through_a_real_worker(tmp_path):
    with bench.pipeline_stack(tmp_path, "everysec", 10) as stack:
        pair = bench_naive.Pair(stack, concurrency=2)
        pair.use(bench_naive.NAIVE)
        assert not stack.procs.alive("worker")  # Xinbao's worker is stopped meanwhile
        rate, cpu = pair.burst(bench_naive.NAIVE, range(3))
        # Three deals may take less than one 10 ms CPU tick: measured, maybe 0.
        assert rate > 0 and cpu["naive-worker"] >= 0 and "worker" not in cpu
        stored = [json.loads(raw) for raw in stack.r.mget(stack.r.keys("naive:deal:*"))]
        assert len(stored) == bench_naive.WARM_DEALS + 3  # the warm-up deals and three counted
        counted = [d for d in stored if not d["invoices"][0]["number"].startswith("ST-50")]
        assert [d["state"] for d in counted] == ["pending_bank"] * 3
        assert {d["bank_id"] for d in counted} == {"STRESS-BANK-A"}
        assert {d["requested_amount"] for d in counted} == {"10000.00"}

        url = f"{pair.naive.base}/api/v1/deals"
        headers = dataset.auth(dataset.EXPORTER_TOKEN)
        bad = {**dataset.deal_body(4), "exporter_uscc": "91320500MA1KL8M9NX"}
        answer = requests.post(url, json=bad, headers=headers, timeout=10)
        assert answer.status_code == 422 and "exporter_uscc" in answer.json()["errors"]
        unknown = requests.post(
            url, json=dataset.deal_body(4), headers=dataset.auth("no-such-token-000000"), timeout=10
        )
        assert unknown.status_code == 401

        # And back: Xinbao's worker takes over the next burst.
        rate, _ = pair.burst(bench_naive.XINBAO, range(5, 7))
        assert rate > 0 and not stack.procs.alive("naive-worker")


@_needs_redis_server
def test_a_tiny_naive_comparison_prints_its_ratios(tmp_path):
    lines: list[str] = []
    figures = bench_naive.run((6, 10), 2, 4, "everysec", tmp_path, emit=lines.append)
    for name in (
        "ratio_vs_naive_6",
        "ratio_vs_naive_10",
        "ratio_vs_naive",
        "xinbao_10_per_s",
        "naive_10_per_s",
    ):
        assert figures[name] > 0, name
    # A few deals' CPU is a few 10 ms ticks, maybe none: the ratio is there, maybe 0.
    assert figures["cpu_ratio_vs_naive_10"] >= 0
    assert len(lines) == 5
    assert lines[2].startswith("naive: 6 deals POST->result, round 2: naive ")
    assert "ratio_vs_naive_6=" in lines[-1] and "ratio_vs_naive_10=" in lines[-1]


@_needs_redis_server
def test_a_tiny_scaling_run_prints_every_figure(tmp_path):
    lines: list[str] = []
    figures = bench_scaling.run(
        8, (1, 2), (1, 3), {1: 20, 3: 20}, "everysec", tmp_path, emit=lines.append
    )
    for name in (
        "worker_1_per_s",
        "worker_2_per_s",
        "web_1_per_s",
        "web_2_per_s",
        "cpu_ms_per_deal_1_invoices",
        "cpu_ms_per_deal_3_invoices",
    ):
        assert figures[name] > 0, name
    assert lines[0].startswith("scaling: deals/s by worker processes")
    assert lines[1].startswith("scaling: deals/s by web processes")
    assert lines[3].startswith("scaling: 20 deals of 3 invoice(s):")
