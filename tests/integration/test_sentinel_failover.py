"""Redis under Sentinel: real workers keep moving deals after the primary is SIGKILLed and a
replica promoted; with XINBAO_REQUIRE_REPLICA_ACK=1 no accepted deal is lost, without it an
accepted deal the replica never received is gone (docs/scaling.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.test_pipeline_workers import EXPORTER, application
from tests.support import BIN, ROOT, Processes, SentinelCluster, wait_until
from web import create_app
from workflow.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

STEPS = ["submitted", "verification_started", "verified", "offered_to_bank"]


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("sentinel")
    cluster = SentinelCluster(workdir)
    procs = Processes({}, workdir)
    try:
        cluster.start()
        env = {
            **cluster.env(),
            "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
            "XINBAO_STALE_AFTER_SECONDS": "3",
            "LOG_LEVEL": "INFO",
        }
        procs.env.update(env)
        # The console script through the sentinels, for real.
        subprocess.run(
            [str(BIN / "xinbao"), "load", str(ROOT / "data" / "demo.json")],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        procs.worker()
        procs.beat()
        guarded = create_app(load_settings({**env, "XINBAO_REQUIRE_REPLICA_ACK": "1"}))
        unguarded = create_app(load_settings(env))
        yield {
            "cluster": cluster,
            "procs": procs,
            "guarded": guarded.test_client(),
            "unguarded": unguarded.test_client(),
        }
    except BaseException:
        print(procs.logs(), cluster.logs())
        raise
    finally:
        procs.stop_all()
        cluster.stop()


def post(web: Any, number: str, key: str | None = None) -> Any:
    headers = {**EXPORTER, **({"Idempotency-Key": key} if key else {})}
    return web.post("/api/v1/deals", json=application(number, amount="20000.00"), headers=headers)


def submit_until_accepted(web: Any, number: str, answers: list[str]) -> dict:
    """Submit with an Idempotency-Key, retrying each 503 as its Retry-After says: a client
    doing what the API tells it to. ``answers`` collects the refusals' codes."""
    deadline = time.monotonic() + 60
    while True:
        answer = post(web, number, key=f"sentinel-{number}")
        if answer.status_code == 202:
            return answer.get_json()
        assert answer.status_code == 503, answer.get_data(as_text=True)
        answers.append(answer.get_json()["error"]["code"])
        assert time.monotonic() < deadline, f"{number} never accepted: {answers[-5:]}"
        time.sleep(0.2)


def final(web: Any, deal_id: str) -> dict:
    def reached():
        answer = web.get(f"/api/v1/deals/{deal_id}", headers=EXPORTER)
        return answer.status_code == 200 and answer.get_json()["state"] == "pending_bank"

    wait_until(reached, 30, interval=0.2, what=f"{deal_id} to be offered to a bank")
    return web.get(f"/api/v1/deals/{deal_id}/events", headers=EXPORTER).get_json()["events"]


def test_deals_flow_on_through_a_failover_and_no_accepted_deal_is_lost(sentinel_stack):
    cluster: SentinelCluster = sentinel_stack["cluster"]
    web = sentinel_stack["guarded"]
    replica_port = cluster.replica.port
    refusals: list[str] = []
    accepted: dict[str, dict] = {}
    rejoined = threading.Thread()
    for i in range(1, 13):
        if i == 5:
            # Mid-run, with deals in the workers' hands: the primary dies as in a crash. Its
            # supervisor restarts it once Sentinel has promoted the replica; it rejoins as a
            # replica (until then the guard has no replica to wait for and answers 503).
            dead = cluster.primary
            dead.kill()

            def rejoin(dead=dead) -> None:
                cluster.rejoin(dead, cluster.promoted(dead.port))

            rejoined = threading.Thread(target=rejoin)
            rejoined.start()
        number = f"INV-HX-10{i:02d}"
        accepted[number] = submit_until_accepted(web, number, refusals)
    rejoined.join()
    assert cluster.master_port() == replica_port  # running on the promoted replica
    assert refusals, "the failover went unnoticed: was the primary really killed?"
    for deal in accepted.values():
        assert [e["type"] for e in final(web, deal["id"])] == STEPS  # each step exactly once
    # Nothing duplicated: the exporter has exactly one deal per accepted invoice.
    listed = web.get("/api/v1/deals?per_page=100", headers=EXPORTER).get_json()["items"]
    mine = [d["id"] for d in listed if d["id"] in {a["id"] for a in accepted.values()}]
    assert sorted(mine) == sorted(a["id"] for a in accepted.values())
    assert len(listed) == len(accepted)
    # Readiness through the sentinels, on the promoted primary: Redis, the sentinel:// broker,
    # a worker that swept and beat all answer there.
    def ready() -> Any:
        answer = web.get("/readyz")
        return answer.get_json() if answer.status_code == 200 else None

    body = wait_until(ready, 40, interval=0.5, what="/readyz through the sentinels")
    assert body["redis"] == "ok" and body["broker"] == "ok" and body["worker_hosts"]


def test_without_the_guard_a_failover_loses_what_the_replica_never_got(sentinel_stack):
    """Replication cut (replica frozen, its link dropped), then the primary dies: a deal
    answered 202 without the guard is gone after the failover; with the guard the same
    situation answers 503 REPLICA_ACK_TIMEOUT, and the client's retry makes the deal."""
    cluster: SentinelCluster = sentinel_stack["cluster"]
    primary, replica = cluster.primary, cluster.replica
    wait_until(lambda: cluster.replicas_of(primary.port) == 1, 20, what="a replica online")
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        redis.Redis(port=primary.port).execute_command("CLIENT", "KILL", "TYPE", "replica")
        unguarded = post(sentinel_stack["unguarded"], "INV-HX-1013")
        assert unguarded.status_code == 202, unguarded.get_data(as_text=True)
        lost = unguarded.get_json()["id"]
        guarded = post(sentinel_stack["guarded"], "INV-HX-1014", key="sentinel-INV-HX-1014")
        assert guarded.status_code == 503, guarded.get_data(as_text=True)
        assert guarded.get_json()["error"]["code"] == "REPLICA_ACK_TIMEOUT"
        assert guarded.headers["Retry-After"]
        primary.kill()
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    cluster.rejoin(primary, cluster.promoted(primary.port, timeout=60))
    web = sentinel_stack["guarded"]
    # The 202 without the guard named a deal the promoted replica never received.
    assert web.get(f"/api/v1/deals/{lost}", headers=EXPORTER).status_code == 404
    # The 503 told the client to retry: its retry (same key) makes the deal, exactly once.
    deal = submit_until_accepted(web, "INV-HX-1014", [])
    assert [e["type"] for e in final(web, deal["id"])] == STEPS
