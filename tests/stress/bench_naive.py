"""`make bench`, part: Xinbao against the naive Flask + Celery app of its shape (issue 11).

One private Redis (AOF, the bench's fsync policy) with Xinbao's reference data; Xinbao's stack
as ``bench.pipeline_stack`` starts it, and beside it the naive app (``naive_app.py``) under the
same gunicorn settings with a worker of the same concurrency and Celery settings. Each burst
(400 and 2,000 deals by default) is sent by the same closed-loop client (``bench.Client``, 16
concurrent) to one system while the other's worker is stopped (their gunicorns idle), the same
deal bodies to both; deals/s counts from the first POST to the last result written
(Xinbao: ``offered_to_bank`` committed; naive: the task's SET). Rounds alternate which system
goes first. Prints ``ratio_vs_naive_<size>`` (Xinbao's mean deals/s over the naive's) and CPU
per deal of each.

    python -m tests.stress.bench_naive [--sizes 400,2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import redis

from tests.stress import bench, naive_app
from tests.support import BIN, free_port, wait_until

SIZES = (400, 2000)
ROUNDS = 2
CONCURRENCY = 16
XINBAO, NAIVE = "xinbao", "naive"
# Warm-up deals of undeclared invoices, far from any burst's indexes: they prove the freshly
# started worker is consuming, and give each of its pool processes a first deal.
WARM_INDEX = 5 * 10**6
WARM_DEALS = 20
# Celery's log level as tests.support.Processes.worker starts Xinbao's worker in pipeline_stack.
WORKER_LOGLEVEL = "INFO"


def naive_results(r: redis.Redis, deal_ids: list[str]) -> dict[str, float]:
    """When each naive deal's result was written (deals still waiting are left out)."""
    out = {}
    for chunk in range(0, len(deal_ids), 1000):
        part = deal_ids[chunk : chunk + 1000]
        for deal_id, raw in zip(part, r.mget([naive_app.deal_key(d) for d in part]), strict=True):
            deal = json.loads(raw) if raw else {}
            if "verified_at" in deal:
                out[deal_id] = deal["verified_at"]
    return out


class Pair:
    """Xinbao's bench stack and the naive app on its Redis, one worker running at a time."""

    def __init__(self, stack: bench.Stack, concurrency: int):
        self.stack, self.concurrency = stack, concurrency
        port = free_port()
        bench.gunicorn(stack.procs, "naive-web", "tests.stress.naive_app:create_app()", port)
        self.naive = bench.Client(f"http://127.0.0.1:{port}")
        self.warmed = 0
        self.running = XINBAO  # pipeline_stack leaves Xinbao's worker and beat running

    def roots(self, system: str) -> dict[str, int]:
        names = ("web", "worker", "beat") if system == XINBAO else ("naive-web", "naive-worker")
        roots = {name: self.stack.procs.running[name].pid for name in names}
        roots["redis"] = self.stack.server.process.pid
        return roots

    def use(self, system: str) -> None:
        """Stop the other system's worker (and beat), start this one's, wait until it works."""
        if self.running == system:
            return
        procs = self.stack.procs
        if system == XINBAO:
            procs.stop("naive-worker")
            procs.worker(concurrency=bench.WORKER_CONCURRENCY)  # as pipeline_stack starts it
            procs.beat()
        else:
            procs.stop("worker")
            procs.stop("beat")
            procs.start(
                "naive-worker",
                [
                    str(BIN / "celery"),
                    "-A",
                    "tests.stress.naive_worker",
                    "worker",
                    "-Q",
                    naive_app.QUEUE,
                    "--concurrency",
                    str(bench.WORKER_CONCURRENCY),
                    "--loglevel",
                    WORKER_LOGLEVEL,
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
        self.running = system
        self.warm(system)

    def warm(self, system: str) -> None:
        indexes = range(WARM_INDEX + self.warmed, WARM_INDEX + self.warmed + WARM_DEALS)
        self.warmed += WARM_DEALS
        if system == XINBAO:
            bench.await_worker(self.stack, indexes)
            return
        sent = bench.closed_loop(self.naive, indexes, bench.WORKER_CONCURRENCY * 2)
        ids = [s.deal_id for s in sent if s.deal_id]
        assert len(ids) == WARM_DEALS, "the naive app refused a warm-up deal"
        wait_until(
            lambda: len(naive_results(self.stack.r, ids)) == len(ids),
            60,
            interval=0.05,
            what="the naive warm-up deals",
        )

    def client(self, system: str) -> bench.Client:
        return self.stack.client if system == XINBAO else self.naive

    def burst(self, system: str, indexes: range) -> tuple[float, dict[str, float]]:
        """Deals/s from the first POST to the last result written, and CPU ms per deal of
        each process tree (and the client)."""
        self.use(system)
        r = self.stack.r
        roots = self.roots(system)
        before = bench.cpu_seconds(roots)
        sent = bench.closed_loop(self.client(system), indexes, self.concurrency)
        if system == XINBAO:
            rate = bench.pending_rate(r, sent)
        else:
            ids = [s.deal_id for s in sent if s.deal_id]
            assert len(ids) == len(indexes), "the naive app refused some deals"
            wait_until(
                lambda: len(naive_results(r, ids)) == len(ids),
                600,
                interval=0.1,
                what=f"{len(ids)} naive deals verified",
            )
            done = naive_results(r, ids)
            states = {
                json.loads(raw)["state"]
                for raw in r.mget([naive_app.deal_key(d) for d in ids[:200]])
            }
            assert states == {naive_app.PENDING}, states
            rate = len(ids) / (max(done.values()) - min(s.at for s in sent))
        after = bench.cpu_seconds(roots)
        return rate, {name: (after[name] - before[name]) * 1000 / len(sent) for name in after}


def run(
    sizes: tuple[int, ...],
    rounds: int,
    concurrency: int,
    appendfsync: str,
    work: Path,
    emit: Callable[[str], None] = print,
) -> dict[str, float]:
    """Measure both systems on bursts of each size, ``rounds`` times; return the figures."""
    invoices = sum(sizes) * rounds
    rates: dict[tuple[str, int], list[float]] = {}
    # CPU ms per deal of the servers (web, worker, beat, Redis; not the client)
    cpus: dict[tuple[str, int], list[float]] = {}
    with bench.pipeline_stack(work / "naive", appendfsync, invoices) as stack:
        pair = Pair(stack, concurrency)
        start = 0
        for round_ in range(rounds):
            order = (XINBAO, NAIVE) if round_ % 2 == 0 else (NAIVE, XINBAO)
            for size in sizes:
                line = []
                for system in order:
                    rate, cpu = pair.burst(system, range(start, start + size))
                    rates.setdefault((system, size), []).append(rate)
                    servers = sum(ms for name, ms in cpu.items() if name != "client")
                    cpus.setdefault((system, size), []).append(servers)
                    shown = " ".join(f"{name}={ms:.2f}" for name, ms in cpu.items())
                    line.append(f"{system} {rate:.1f} deals/s (cpu ms per deal: {shown})")
                start += size
                emit(f"naive: {size} deals POST->result, round {round_ + 1}: " + "; ".join(line))
    out: dict[str, float] = {}
    for size in sizes:
        ours = statistics.mean(rates[(XINBAO, size)])
        theirs = statistics.mean(rates[(NAIVE, size)])
        out[f"xinbao_{size}_per_s"], out[f"naive_{size}_per_s"] = ours, theirs
        out[f"ratio_vs_naive_{size}"] = ours / theirs
        # Less noisy on a shared machine: the naive app's server CPU per deal over Xinbao's.
        ours_cpu = statistics.mean(cpus[(XINBAO, size)])
        # 0 when a tiny run took less than one CPU tick: nothing to compare.
        out[f"cpu_ratio_vs_naive_{size}"] = (
            statistics.mean(cpus[(NAIVE, size)]) / ours_cpu if ours_cpu else 0.0
        )
    out["ratio_vs_naive"] = min(out[f"ratio_vs_naive_{size}"] for size in sizes)
    emit(
        "naive: "
        + " ".join(
            f"ratio_vs_naive_{size}={out[f'ratio_vs_naive_{size}']:.2f} "
            f"(xinbao {out[f'xinbao_{size}_per_s']:.0f} / naive {out[f'naive_{size}_per_s']:.0f} "
            f"deals/s; server cpu per deal naive/xinbao "
            f"{out[f'cpu_ratio_vs_naive_{size}']:.2f})"
            for size in sizes
        )
        + f" ratio_vs_naive={out['ratio_vs_naive']:.2f} (target >= 1.5; mean of {rounds} "
        f"round(s), {concurrency} concurrent clients)"
    )
    return out


def parse_sizes(raw: str) -> tuple[int, ...]:
    return tuple(int(s) for s in raw.split(",") if s.strip())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    args = parser.parse_args()
    return bench.run_alone(
        "naive",
        lambda work, emit: run(
            parse_sizes(args.sizes), args.rounds, args.concurrency, args.appendfsync, work, emit
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
