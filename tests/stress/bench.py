"""`make bench`: the deal pipeline measured against bare Celery and bare Flask in one run.

Starts a private redis-server (AOF; ``--appendfsync`` or $APPENDFSYNC picks ``always`` or
``everysec``, default ``always`` as shipped), the web app under gunicorn, a Celery worker and
beat, drives deals through HTTP with a concurrent client, and prints throughput, latency at a
fixed offered load and at 80% of the measured maximum, the baselines and their ratios, Redis
memory per deal, Xinbao against the naive Flask + Celery app of its shape on 400- and 2,000-deal
bursts (``bench_naive``: ``ratio_vs_naive_<size>``), deals/s by worker and web process count
and CPU per deal of 1, 10 and 50 invoices (``bench_scaling``), and the bank queue's
response time at 1,000 and 100,000 pending deals, in the API and on the officer desk's pages
(``bench_pages``: goal p95 < 50 ms at 100,000), then the arrears sweep and the portfolio at
100,000 open advances (``bench_sweeps``), the sweep, the queue and the portfolio again at
10,000 and 100,000 deals, 1,000,000 with ``--scale-sizes`` (``bench_scale``), and a
100,000-member whitelist import from CSV and XLSX (``bench_whitelist``), and the capacity
figures: deals/s per web and worker core, Redis commands, CPU and memory per deal, and what one
Redis primary carries on the real command mix replayed with redis-benchmark
(``bench_capacity``). The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
import requests

from tests.stress import (
    bare_celery,
    bench_capacity,
    bench_naive,
    bench_pages,
    bench_replica_ack,
    bench_scale,
    bench_scaling,
    bench_sweeps,
    bench_whitelist,
    dataset,
)
from tests.stress.load import Client, Sent, closed_loop, open_loop, requests_per_second
from tests.stress.procstat import cpu_report, cpu_seconds, machine
from tests.support import (
    BIN,
    ROOT,
    Processes,
    RedisServer,
    free_port,
    supervised,
    wait_until,
)
from workflow import keys

# One Celery hop from POST to pending_bank: the verify task verifies, reserves and routes.
PIPELINE_HOPS = 1
WEB_WORKERS = 2
WORKER_CONCURRENCY = 2
# The web's worker class and threads as shipped (web/gunicorn_conf.py: gthread, 4 threads);
# BENCH_WORKER_CLASS=sync measures one request per process at a time. The naive app and the
# bare Flask echo run under the same settings.
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "")
GUNICORN = ["--config", "python:web.gunicorn_conf", "--workers", str(WEB_WORKERS),
            *(["--worker-class", WORKER_CLASS, "--threads", "1"] if WORKER_CLASS else []),
            "--log-level", "warning"]


def gunicorn(procs: Processes, name: str, target: str, port: int,
             workers: int | None = None) -> None:
    """``target`` under the bench's gunicorn settings (``workers`` overrides their count)."""
    count = ["--workers", str(workers)] if workers else []
    procs.start(name, [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *GUNICORN, *count,
                       target])
    wait_until(lambda: _listening(port), 30, what=f"{name} on port {port}")


def _listening(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except requests.RequestException:  # refused, or accepted before the app is loaded
        return False


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Stack:
    """The pipeline as `make bench` runs it: a private Redis, gunicorn, a worker and beat."""

    server: RedisServer
    procs: Processes
    r: redis.Redis
    client: Client
    env: dict[str, str]
    web_port: int

    def roots(self) -> dict[str, int]:
        """The process trees whose CPU the bench reads, by name."""
        roots = {name: self.procs.running[name].pid for name in ("web", "worker", "beat")}
        roots["redis"] = self.server.process.pid
        return roots


@contextlib.contextmanager
def pipeline_stack(work: Path, appendfsync: str, invoices: int, web_workers: int = WEB_WORKERS,
                   worker_concurrency: int = WORKER_CONCURRENCY) -> Iterator[Stack]:
    """Start the stack on ``invoices`` declared invoices, warmed up by one deal; stop it all
    when the block ends."""
    work.mkdir(parents=True, exist_ok=True)
    server = RedisServer(work / "redis", appendonly=True, fsync=appendfsync).start()
    env = {"REDIS_URL": server.url, "LOG_LEVEL": "WARNING"}
    procs = Processes(env, work)
    r = redis.Redis.from_url(server.url, decode_responses=True)
    with supervised(server, procs):
        reference = dataset.write_reference(work / "reference.json", invoices)
        subprocess.run([str(BIN / "xinbao"), "load", str(reference)],
                       env={**os.environ, **env}, check=True, capture_output=True)
        web_port = free_port()
        gunicorn(procs, "web", "web:create_app()", web_port, web_workers)
        procs.worker(concurrency=worker_concurrency)
        procs.beat()
        client = Client(f"http://127.0.0.1:{web_port}")
        client.post_deal(10**6 - 1)  # warm up every process once (not a counted deal)
        time.sleep(1)
        yield Stack(server, procs, r, client, env, web_port)


def latency_run(client: Client, r: redis.Redis, indexes: range,
                rate: float) -> tuple[list[str], list[float]]:
    """Open loop at ``rate``: the deals' ids and their latencies, POST sent (as scheduled) ->
    pending_bank committed, in ms."""
    sent = open_loop(client, indexes, rate)
    ids = [s.deal_id for s in sent if s.deal_id]
    await_pending(r, ids, 600)
    offered = offered_at(r, ids)
    return ids, [(offered[s.deal_id] - s.at) * 1000 for s in sent if s.deal_id]


def pending_rate(r: redis.Redis, sent: list[Sent]) -> float:
    """Deals/s from the first POST sent to the last deal's ``offered_to_bank`` committed."""
    ids = [s.deal_id for s in sent if s.deal_id]
    assert len(ids) == len(sent), "some deals were refused"
    await_pending(r, ids, 600)
    offered = offered_at(r, ids)
    return len(ids) / (max(offered.values()) - min(s.at for s in sent))


def await_worker(stack: Stack, indexes: range) -> None:
    """Once a worker was (re)started: send deals ``indexes`` (undeclared invoices, far from any
    counted deal; a few, so every pool process takes some) and wait until they are decided, so
    a timed burst finds the worker at work."""
    sent = closed_loop(stack.client, indexes, WORKER_CONCURRENCY * 2)
    ids = [s.deal_id for s in sent if s.deal_id]
    assert len(ids) == len(indexes), "a warm-up deal was refused"

    def decided() -> bool:
        pipe = stack.r.pipeline(transaction=False)
        for deal_id in ids:
            pipe.hget(keys.deal(deal_id), "state")
        return not {None, "submitted", "verifying"} & set(pipe.execute())

    wait_until(decided, 60, interval=0.05, what="a worker at work")


def await_pending(r: redis.Redis, deal_ids: list[str], timeout: float) -> None:
    def all_pending() -> bool:
        pipe = r.pipeline(transaction=False)
        for deal_id in deal_ids:
            pipe.hget(keys.deal(deal_id), "state")
        states = pipe.execute()
        return all(s == "pending_bank" for s in states)

    wait_until(all_pending, timeout, interval=0.25, what=f"{len(deal_ids)} deals pending_bank")


def offered_at(r: redis.Redis, deal_ids: list[str]) -> dict[str, float]:
    pipe = r.pipeline(transaction=False)
    for deal_id in deal_ids:
        pipe.lrange(keys.events(deal_id), 0, -1)
    out = {}
    for deal_id, events in zip(deal_ids, pipe.execute(), strict=True):
        for raw in events:
            event = json.loads(raw)
            if event["type"] == "offered_to_bank":
                out[deal_id] = datetime.fromisoformat(event["at"]).timestamp()
    return out


def timed_requests(url: str, headers: dict, count: int) -> list[float]:
    session = requests.Session()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        response = session.get(url, headers=headers, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text
    return times


def synthesize_queue(r: redis.Redis, template_id: str, bank_id: str, start: int,
                     stop: int) -> None:
    """Copy a real pending deal into synthetic deals in ``bank_id``'s queue (pipelined)."""
    fields = r.hgetall(keys.deal(template_id))
    fields.update(bank_id=bank_id, offered_banks=json.dumps([bank_id]))
    deadline = time.time() + 86400
    for chunk in range(start, stop, 2000):
        pipe = r.pipeline(transaction=False)
        for n in range(chunk, min(chunk + 2000, stop)):
            deal_id = f"syn{n:09d}"
            pipe.hset(keys.deal(deal_id), mapping={**fields, "id": deal_id})
            pipe.zadd(keys.bank_queue(bank_id), {deal_id: deadline + n})
            pipe.zadd(keys.by_bank(bank_id), {deal_id: deadline + n})
        pipe.execute()


def memory_of(r: redis.Redis, deal_ids: list[str]) -> float:
    pipe = r.pipeline(transaction=False)
    for deal_id in deal_ids:
        pipe.memory_usage(keys.deal(deal_id), samples=0)
        pipe.memory_usage(keys.events(deal_id), samples=0)
    sizes = pipe.execute()
    return sum(sizes) / len(deal_ids)


def run_alone(name: str, part: Callable[[Path, Callable[[str], None]], object]) -> int:
    """Run one bench part by itself (``python -m tests.stress.bench_<name>``): the machine, a
    temporary work directory, every process stopped even on SIGTERM, and the time it took."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {machine()}", flush=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f"xinbao-bench-{name}-") as tmp:
        part(Path(tmp), lambda line: print(line, flush=True))
    print(f"{name}: took {time.time() - t0:.0f} s", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=2000, help="closed-loop deals")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50.0, help="open-loop deals per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="open-loop duration")
    parser.add_argument("--peak-seconds", type=float, default=10.0,
                        help="open-loop duration at 80%% of the measured maximum")
    parser.add_argument("--peak-deals", type=int, default=3000,
                        help="at most this many deals at 80%% of the maximum (0: skip)")
    parser.add_argument("--queue-sizes", default="1000,100000")
    parser.add_argument("--api-requests", type=int, default=2000)
    parser.add_argument("--naive-sizes", default=",".join(map(str, bench_naive.SIZES)),
                        help="bursts sent to Xinbao and to the naive Flask + Celery app "
                        "(empty: skip)")
    parser.add_argument("--naive-rounds", type=int, default=bench_naive.ROUNDS)
    parser.add_argument("--scaling-deals", type=int, default=bench_scaling.DEALS,
                        help="deals per worker and web process count (0: skip the scaling "
                        "part: process counts and deals of 1, 10 and 50 invoices)")
    parser.add_argument("--desk-sizes", default=bench_pages.DEFAULT_SIZES,
                        help="officer desk queue sizes (empty: skip the desk pages)")
    parser.add_argument("--desk-requests", type=int, default=300,
                        help="timed requests per desk page and size")
    parser.add_argument("--sweep-advances", type=int, default=bench_sweeps.ADVANCES,
                        help="open advances for the arrears sweep and the portfolio (0: skip)")
    parser.add_argument("--scale-sizes", default=",".join(map(str, bench_scale.SIZES)),
                        help="deals in the book and the queue at which the sweep, the queue "
                        "and the portfolio are measured again (10000,100000,1000000 adds a "
                        "million: 3.5-7 minutes more and 6 GiB of Redis; empty: skip)")
    parser.add_argument("--whitelist-members", type=int, default=bench_whitelist.MEMBERS,
                        help="members of the whitelist import, CSV and XLSX (0: skip)")
    parser.add_argument("--replica-ack-deals", type=int, default=bench_replica_ack.SUBMISSIONS,
                        help="submissions per mode, without and with XINBAO_REQUIRE_REPLICA_ACK "
                        "against a primary and a replica (0: skip)")
    parser.add_argument("--capacity-deals", type=int, default=bench_capacity.DEALS,
                        help="deals of the capacity measurement and replay (0: skip)")
    parser.add_argument("--appendfsync", choices=("always", "everysec"),
                        default=os.environ.get("APPENDFSYNC", "always"),
                        help="Redis AOF fsync policy (default $APPENDFSYNC, else always: the "
                        "setting docker-compose and make run ship)")
    args = parser.parse_args()
    # Stopped from outside: still stop every process this run started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    open_count = int(args.rate * args.seconds)
    peak_start = args.deals + open_count + args.api_requests
    total = peak_start + args.peak_deals

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="xinbao-bench-") as tmp:
        work = Path(tmp)
        print(f"machine: {machine()}", flush=True)
        print(f"redis: appendonly yes, appendfsync {args.appendfsync}", flush=True)
        with pipeline_stack(work / "pipeline", args.appendfsync, total) as stack:
            server, procs, r, client = stack.server, stack.procs, stack.r, stack.client
            env = stack.env
            web_port = stack.web_port

            # 1. throughput, closed loop
            used_before = r.info("memory")["used_memory"]
            roots = stack.roots()
            cpu_before = cpu_seconds(roots)
            sent = closed_loop(client, range(args.deals), args.concurrency)
            out["deals_per_s"] = pending_rate(r, sent)
            elapsed = args.deals / out["deals_per_s"]
            out["bytes_per_deal_total"] = (r.info("memory")["used_memory"] - used_before) / len(
                sent)
            print(f"throughput: {args.deals} deals POST->pending_bank in {elapsed:.1f} s = "
                  f"{out['deals_per_s']:.1f} deals/s ({args.concurrency} concurrent clients)",
                  flush=True)
            print(f"  cpu ms per deal: {cpu_report(cpu_before, cpu_seconds(roots), args.deals)}",
                  flush=True)

            # 2. latency at a fixed offered load, open loop
            ids, latencies = latency_run(client, r, range(args.deals, args.deals + open_count),
                                         args.rate)
            for pct in (50, 95, 99):
                out[f"p{pct}_ms"] = percentile(latencies, pct)
            print(f"latency at {args.rate:g} deals/s offered for {args.seconds:g} s: "
                  f"p50={out['p50_ms']:.0f} ms p95={out['p95_ms']:.0f} ms "
                  f"p99={out['p99_ms']:.0f} ms (POST sent -> pending_bank committed)",
                  flush=True)

            # 2b. latency at 80% of the maximum measured in 1, open loop (at most --peak-deals)
            if args.peak_deals:
                peak = 0.8 * out["deals_per_s"]
                count = max(1, min(args.peak_deals, int(peak * args.peak_seconds)))
                _, at_peak = latency_run(client, r, range(peak_start, peak_start + count), peak)
                out["p99_at_80pct_ms"] = percentile(at_peak, 99)
                print(f"latency at 80% of the maximum, {peak:.0f} deals/s offered for "
                      f"{count / peak:.1f} s ({count} deals): p50="
                      f"{percentile(at_peak, 50):.0f} ms p95={percentile(at_peak, 95):.0f} ms "
                      f"p99={out['p99_at_80pct_ms']:.0f} ms", flush=True)

            # 3. memory per deal, pending and after the bank's approval
            sample = ids[:200]
            out["bytes_pending"] = memory_of(r, sample)
            bank = {**dataset.auth(dataset.BANK_TOKENS["STRESS-BANK-A"])}
            for deal_id in sample[:100]:
                response = requests.post(f"{client.base}/api/v1/deals/{deal_id}/decision",
                                         json={"decision": "approve"}, headers=bank, timeout=10)
                assert response.status_code == 200, response.text
            out["bytes_per_deal"] = memory_of(r, sample[:100])
            print(f"redis memory: {out['bytes_pending']:.0f} B per pending deal, "
                  f"{out['bytes_per_deal']:.0f} B per approved deal with its event log "
                  f"(MEMORY USAGE of hash + events); {out['bytes_per_deal_total']:.0f} B per "
                  f"deal with indexes, locks and reservations (INFO used_memory delta)",
                  flush=True)

            # 4. bare Celery baseline, same Redis, same worker settings
            procs.stop("worker")
            procs.stop("beat")
            procs.start("bare-worker", [str(BIN / "celery"), "-A", "tests.stress.bare_celery",
                                        "worker", "-Q", bare_celery.QUEUE, "--concurrency",
                                        str(WORKER_CONCURRENCY), "--loglevel", "WARNING",
                                        "--without-gossip", "--without-mingle"])
            bare_env = {**os.environ, **env}
            warm = subprocess.run(
                [str(BIN / "python"), "-c", "from tests.stress import bare_celery as b; "
                 f"b.submit(20, {PIPELINE_HOPS})"], env=bare_env, cwd=ROOT, check=True)
            assert warm.returncode == 0
            wait_until(lambda: int(r.get(bare_celery.DONE_KEY) or 0) >= 20, 60,
                       what="bare warm-up")
            r.delete(bare_celery.DONE_KEY)
            chains = args.deals
            bare_roots = {"worker": procs.running["bare-worker"].pid,
                          "redis": server.process.pid}
            bare_before = cpu_seconds(bare_roots)
            publisher = os.times()
            t0 = time.time()
            subprocess.run(
                [str(BIN / "python"), "-c", "from tests.stress import bare_celery as b; "
                 f"b.submit({chains}, {PIPELINE_HOPS})"], env=bare_env, cwd=ROOT, check=True)
            wait_until(lambda: int(r.get(bare_celery.DONE_KEY) or 0) >= chains, 600,
                       interval=0.05, what="bare chains")
            bare_rate = chains / (time.time() - t0)
            out["bare_per_s"] = bare_rate
            out["ratio_vs_bare"] = out["deals_per_s"] / bare_rate
            print(f"baseline: bare Celery chain of {PIPELINE_HOPS} no-op hop(s), {chains} "
                  f"chains from a Python loop: {bare_rate:.1f} chains/s; ours/bare = "
                  f"{out['ratio_vs_bare']:.2f}", flush=True)
            bare_after = cpu_seconds(bare_roots)
            bare_after.pop("client")
            bare_before.pop("client")
            done_at = os.times()
            published = (done_at.children_user + done_at.children_system
                         - publisher.children_user - publisher.children_system)
            print(f"  cpu ms per chain: {cpu_report(bare_before, bare_after, chains)} "
                  f"publisher={published * 1000 / chains:.2f}", flush=True)
            procs.stop("bare-worker")

            # 5. API requests/s against a bare Flask echo under the same gunicorn settings
            # (no worker running, so both servers have the machine to themselves)
            # Each client in turn: the lean one (api_ratio), then requests (api_ratio_requests,
            # the client the figure was first measured with), on invoices not used elsewhere.
            fresh = {True: range(args.deals + open_count, peak_start),
                     False: range(total, total + args.api_requests)}
            api_rate = {lean: requests_per_second(client.base, "/api/v1/deals",
                                                  dataset.auth(dataset.EXPORTER_TOKEN),
                                                  fresh[lean], args.concurrency, lean)
                        for lean in (True, False)}
            procs.stop("web")
            echo_port = free_port()
            gunicorn(procs, "echo", "tests.stress.echo_app:app", echo_port)
            echo_rate = {lean: requests_per_second(f"http://127.0.0.1:{echo_port}", "/echo", {},
                                                   fresh[lean], args.concurrency, lean)
                         for lean in (True, False)}
            procs.stop("echo")
            out["api_per_s"], out["echo_per_s"] = api_rate[True], echo_rate[True]
            out["api_ratio"] = api_rate[True] / echo_rate[True]
            out["api_ratio_requests"] = api_rate[False] / echo_rate[False]
            print(f"api: POST /api/v1/deals {api_rate[True]:.0f} req/s vs bare Flask echo "
                  f"{echo_rate[True]:.0f} req/s = {out['api_ratio']:.2f}; with the requests "
                  f"client {api_rate[False]:.0f} vs {echo_rate[False]:.0f} req/s = "
                  f"{out['api_ratio_requests']:.2f} (gunicorn {' '.join(GUNICORN)})", flush=True)

            # 6. the bank's queue at 1,000 and 100,000 pending deals
            gunicorn(procs, "web", "web:create_app()", web_port)
            bank_b = "STRESS-BANK-B"
            queue_url = f"{client.base}/api/v1/deals?state=pending_bank&per_page=20"
            headers_b = dataset.auth(dataset.BANK_TOKENS[bank_b])
            have = 0
            for size in (int(s) for s in args.queue_sizes.split(",")):
                synthesize_queue(r, ids[0], bank_b, have, size)
                have = size
                times = timed_requests(queue_url, headers_b, 200)
                deep = timed_requests(f"{queue_url}&page={size // 40}", headers_b, 50)
                out[f"queue_{size}_p50_ms"] = statistics.median(times)
                print(f"bank queue at {size} pending: first page p50="
                      f"{statistics.median(times):.1f} ms p95={percentile(times, 95):.1f} ms; "
                      f"a middle page p50={statistics.median(deep):.1f} ms", flush=True)

        # 6b. Xinbao against the naive Flask + Celery app, 400 and 2,000 deals, same run
        naive_sizes = bench_naive.parse_sizes(args.naive_sizes)
        if naive_sizes:
            out.update(bench_naive.run(naive_sizes, args.naive_rounds, args.concurrency,
                                       args.appendfsync, work,
                                       emit=lambda line: print(line, flush=True)))
        # 6c. how the cost grows: worker and web process counts, invoices per deal
        if args.scaling_deals:
            bench_scaling.run(args.scaling_deals, bench_scaling.COUNTS, bench_scaling.INVOICES,
                              bench_scaling.INVOICE_DEALS, args.appendfsync, work,
                              emit=lambda line: print(line, flush=True))

        # 7. the officer desk's pages, in process, on a Redis of their own with the demo data
        # (every process above is stopped, so the pages have the machine to themselves)
        desk_sizes = bench_pages.parse_sizes(args.desk_sizes)
        if desk_sizes:
            desk = bench_pages.run(desk_sizes, args.desk_requests, 20, args.appendfsync, work)
            print(bench_pages.verdict_line(desk), flush=True)
            if bench_pages.measured_goal(desk):
                out["desk_p95_ms"], desk_ok = bench_pages.verdict(desk)

        # 8. servicing at 100,000 open advances: the arrears sweep and the portfolio pages
        if args.sweep_advances:
            bench_sweeps.run(args.sweep_advances, min(bench_sweeps.DUE_TODAY,
                                                      args.sweep_advances // 20),
                             bench_sweeps.BUYERS, args.desk_requests, args.appendfsync, work)

        # 8b. how the cost grows with the book: the sweep, the queue and the portfolio again
        # at 10,000 and 100,000 deals (and 1,000,000 on request)
        scale_sizes = bench_naive.parse_sizes(args.scale_sizes)
        if scale_sizes:
            out.update(bench_scale.summary(bench_scale.run(
                scale_sizes, bench_scale.DUE_SHARE, bench_sweeps.BUYERS, bench_scale.REQUESTS,
                args.appendfsync, work, emit=lambda line: print(line, flush=True))))

        # 9. a whitelist programme of 100,000 members imported from CSV and from XLSX
        if args.whitelist_members:
            bench_whitelist.run(args.whitelist_members, args.appendfsync, work)
        # 10. what XINBAO_REQUIRE_REPLICA_ACK costs: submissions without and with WAIT 1
        if args.replica_ack_deals:
            bench_replica_ack.run(args.replica_ack_deals, bench_replica_ack.CONCURRENCY,
                                  args.appendfsync, work)

        # 11. capacity: per-core rates, Redis per deal, what one primary carries (replayed)
        if args.capacity_deals:
            bench_capacity.run(args.capacity_deals, bench_capacity.CLOSED,
                               bench_capacity.MONITORED, bench_capacity.REQUESTS,
                               args.appendfsync, work, emit=lambda line: print(line, flush=True))

    figures = ["deals_per_s", "ratio_vs_bare", "p99_ms", "p99_at_80pct_ms", "api_ratio",
               "api_ratio_requests",
               "ratio_vs_naive_400", "ratio_vs_naive_2000", "ratio_vs_naive", "bytes_per_deal",
               "scale_deals", "scale_sweep_per_s", "scale_queue_p95_ms", "scale_portfolio_p95_ms"]
    shown = [name for name in figures if name in out]
    shown += [n for n in out if n.startswith("ratio_vs_naive_") and n not in shown]
    digits = {"deals_per_s": 1, "p99_ms": 0, "p99_at_80pct_ms": 0, "bytes_per_deal": 0,
              "scale_deals": 0, "scale_sweep_per_s": 0, "scale_queue_p95_ms": 1,
              "scale_portfolio_p95_ms": 1}
    print("bench: " + " ".join(f"{name}={out[name]:.{digits.get(name, 2)}f}" for name in shown)
          + f" appendfsync={args.appendfsync}"
          + (f" desk_p95_ms={out['desk_p95_ms']:.1f} desk={'PASS' if desk_ok else 'FAIL'}"
             if "desk_p95_ms" in out else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
