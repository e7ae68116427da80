"""Scale out on one Redis: two web processes and two ``celery worker`` hosts share the work,
and no deal's step is done twice."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from celery import Celery

from tests.integration.test_pipeline_workers import EXPORTER, application
from tests.support import (
    BIN,
    ROOT,
    Processes,
    RedisServer,
    free_port,
    supervised,
    wait_until,
    web_answers,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis]

STEPS = ["submitted", "verification_started", "verified", "offered_to_bank"]
# The tasks that move deals (beat's sweeps run on both hosts whatever the load).
DEAL_TASKS = ("xinbao.drain_ready", "xinbao.verify", "xinbao.route")


def deal_tasks_done(broker_url: str) -> dict[str, int]:
    """Per worker host, the deal-moving tasks it ran, as Celery's own remote control counts."""
    app = Celery(broker=broker_url)
    try:
        stats = app.control.inspect(timeout=2).stats() or {}
    finally:
        app.close()
    return {
        host: sum(v for k, v in s.get("total", {}).items() if k in DEAL_TASKS)
        for host, s in stats.items()
    }


def test_two_worker_hosts_and_two_web_processes_share_the_work(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    env = {
        "REDIS_URL": server.url,
        "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
        "XINBAO_STALE_AFTER_SECONDS": "3",
    }
    procs = Processes(env, tmp_path)
    with supervised(server, procs):
        subprocess.run(
            [str(BIN / "xinbao"), "load", str(ROOT / "data" / "demo.json")],
            env={**procs.env, **env},
            check=True,
            capture_output=True,
        )
        webs = []
        for name in ("web-1", "web-2"):
            port = free_port()
            procs.web(port, name=name, workers=1)
            webs.append(f"http://127.0.0.1:{port}")
        # Two hosts as far as Celery knows: a@… and b@…, one process each.
        procs.worker("a", concurrency=1)
        procs.worker("b", concurrency=1)
        procs.beat()
        for base in webs:
            wait_until(lambda base=base: web_answers(base), 30, what=f"{base}")

        def submit(i: int) -> str:
            # Alternate web processes, as a load balancer would.
            answer = requests.post(
                f"{webs[i % 2]}/api/v1/deals",
                headers=EXPORTER,
                timeout=10,
                json=application(f"INV-HX-10{i:02d}", amount="20000.00"),
            )
            assert answer.status_code == 202, answer.text
            return answer.json()["id"]

        deals: list[str] = []
        # Waves of submissions until both hosts have moved deals (each wave's drain goes to
        # whichever host is free; Redis hands a queue's messages to its waiting consumers in
        # turn), at most all 20 declared invoices.
        for wave in range(5):
            with ThreadPoolExecutor(max_workers=4) as pool:
                deals += list(pool.map(submit, range(wave * 4 + 1, wave * 4 + 5)))
            for deal_id in deals:
                wait_until(
                    lambda d=deal_id: _state(webs[0], d) == "pending_bank",
                    30,
                    interval=0.2,
                    what=f"{deal_id} to be offered",
                )
            done = deal_tasks_done(server.url)
            if len(done) == 2 and all(done.values()):
                break
        assert sorted(host.split("@", 1)[0] for host in done) == ["a", "b"], done
        assert all(count > 0 for count in done.values()), done
        for deal_id in deals:  # nothing done twice: each step once, whichever host ran it
            log = requests.get(
                f"{webs[1]}/api/v1/deals/{deal_id}/events", headers=EXPORTER, timeout=5
            ).json()["events"]
            assert [e["type"] for e in log] == STEPS, log


def _state(base: str, deal_id: str) -> str:
    return requests.get(f"{base}/api/v1/deals/{deal_id}", headers=EXPORTER, timeout=5).json()[
        "state"
    ]
