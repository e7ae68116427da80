"""`make bench`, part: what XINBAO_REQUIRE_REPLICA_ACK costs. POST /api/v1/deals under gunicorn
against a Redis primary with one replica on this machine, without and then with the WAIT for
the replica's acknowledgement (alone: ``python -m tests.stress.bench_replica_ack``)."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.stress import dataset
from tests.support import (
    BIN,
    Processes,
    RedisServer,
    SentinelCluster,
    free_port,
    wait_until,
)

SUBMISSIONS = 1000
CONCURRENCY = 8
WEB_WORKERS = 2


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def _submit_all(base: str, indexes: range, concurrency: int) -> tuple[float, list[float]]:
    """Closed loop: seconds for all of them, each POST's latency (s); every one must be 202."""
    local = threading.local()

    def one(index: int) -> float:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        answer = session.post(
            f"{base}/api/v1/deals",
            json=dataset.deal_body(index),
            timeout=30,
            headers={**dataset.auth(dataset.EXPORTER_TOKEN), "Idempotency-Key": f"a{index}"},
        )
        took = time.perf_counter() - start
        assert answer.status_code == 202, answer.text
        return took

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, indexes))
    return time.perf_counter() - began, latencies


def run(submissions: int, concurrency: int, appendfsync: str, work: Path) -> dict[str, dict]:
    """Both modes on one primary+replica pair; prints and returns req/s and latency (ms)."""
    primary = RedisServer(work / "ack-primary", appendonly=True, fsync=appendfsync).start()
    replica = RedisServer(
        work / "ack-replica",
        appendonly=True,
        fsync=appendfsync,
        extra=("--replicaof", "127.0.0.1", str(primary.port)),
    )
    results: dict[str, dict] = {}
    try:
        replica.start()
        wait_until(
            lambda: SentinelCluster.replicas_of(primary.port) == 1, 30, what="the replica in sync"
        )
        env = {"REDIS_URL": primary.url, "LOG_LEVEL": "WARNING"}
        reference = dataset.write_reference(work / "ack-reference.json", 2 * submissions + 40)
        subprocess.run(
            [str(BIN / "xinbao"), "load", str(reference)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        print(
            f"replica ack: POST /api/v1/deals, {submissions} at concurrency {concurrency}, "
            f"gunicorn {WEB_WORKERS} sync workers, primary + 1 replica (AOF {appendfsync}), "
            "no Celery worker",
            flush=True,
        )
        for n, (mode, flag) in enumerate((("off", "0"), ("on", "1"))):
            procs = Processes({**env, "XINBAO_REQUIRE_REPLICA_ACK": flag}, work)
            port = free_port()
            procs.start(
                f"ack-web-{mode}",
                [
                    str(BIN / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(WEB_WORKERS),
                    "--log-level",
                    "warning",
                    "web:create_app()",
                ],
            )
            base = f"http://127.0.0.1:{port}"
            try:
                wait_until(lambda base=base: _answers(base), 30, what="gunicorn")
                first = n * (submissions + 20)
                _submit_all(base, range(first, first + 20), concurrency)  # warm-up
                elapsed, latencies = _submit_all(
                    base, range(first + 20, first + 20 + submissions), concurrency
                )
            finally:
                procs.stop_all()
            figures = {
                "per_s": submissions / elapsed,
                **{f"p{p}_ms": _percentile(latencies, p) * 1000 for p in (50, 95, 99)},
            }
            results[mode] = figures
            print(
                f"  WAIT {mode:>3}: {figures['per_s']:.0f} submissions/s, latency "
                f"p50={figures['p50_ms']:.1f} ms p95={figures['p95_ms']:.1f} ms "
                f"p99={figures['p99_ms']:.1f} ms",
                flush=True,
            )
        off, on = results["off"], results["on"]
        print(
            f"  cost of the guard: {100 * (1 - on['per_s'] / off['per_s']):.0f} % of "
            f"throughput, +{on['p50_ms'] - off['p50_ms']:.1f} ms at p50",
            flush=True,
        )
    finally:
        replica.stop()
        primary.stop()
    return results


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submissions", type=int, default=SUBMISSIONS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default=os.environ.get("APPENDFSYNC", "always"),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xinbao-bench-ack-") as tmp:
        run(args.submissions, args.concurrency, args.appendfsync, Path(tmp))


if __name__ == "__main__":
    main()
