"""`make bench`, part: how the cost grows with the book (issue 11): the arrears sweep, the bank's
queue and the portfolio at 10,000 and 100,000 deals, and at 1,000,000 with
``--sizes 10000,100000,1000000``.

For each size, on a private redis-server (AOF, ``appendfsync`` as the main bench; no automatic
AOF rewrite, whose fork would land in a timed part at random):

1. A book of that many open advances at BOC-NB, ``--due-share`` (5 %) of them past due. The
   first REPS (1,000) are made as ``bench_sweeps`` makes its advances: one real deal approved by
   the workflow, cloned, each clone paid out by the workflow's own ``disburse`` step. Every
   other advance is a copy of one of them (advance n of representative n % REPS) written
   straight into Redis, pipelined (``copy_deals``): a server-side ``COPY`` of its hash and event
   log, its own id, invoice and payment reference, an entry with the representative's score in
   every sorted set the representative is in (state and bank indexes, the due-date schedule),
   its receivable lock and limit reservation; the portfolio counters get what the workflow's
   ``portfolio_ops`` counts for the representative's payout, once per copy. Timed: the arrears
   sweep (``Workflow.sweep_arrears`` until nothing is due, as ``bench_sweeps``), then the
   officer's portfolio page and GET /api/v1/portfolio.
2. The database emptied, a queue of that many deals pending at BOC-NB: REPS clones of one real
   routed deal as ``bench_pages`` makes them, the others copies of those as above (1,000
   distinct deadlines). Timed: the desk's queue and GET /api/v1/deals?state=pending_bank, the
   first and a middle page of each.

A copy's event log is its representative's, byte for byte (no timed step reads a log: the
sweep appends to it); the bank's event feed and the insurer's limit-use outbox have the
representatives' entries only (what the sweep writes there does not depend on their length).
Each size ends with one ``scale at N deals: ...`` line; ``run`` returns the figures by name.

    python -m tests.stress.bench_scale [--sizes 10000,100000,1000000] [--due-share 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from tests.stress import bench, bench_naive
from tests.stress import bench_pages as bp
from tests.stress import bench_sweeps as bs
from tests.support import RedisServer
from web import build_workflow
from web.paging import PER_PAGE
from workflow import keys
from workflow.deal import Deal, utcnow
from workflow.logs import configure_logging
from workflow.portfolio import portfolio_ops
from workflow.settings import load_settings
from workflow.states import State
from workflow.steps import business_date
from workflow.store import epoch_seconds

SIZES = (10_000, 100_000)
REPS = 1000  # deals made by the workflow (or bench_pages) per book; the rest are their copies
DUE_SHARE = 0.05  # a realistic day: 5 % of the book falls due
REQUESTS = 200  # timed requests per page and size
CHUNK = 5000  # copies per pipelined round trip
NO_REWRITE = ("--auto-aof-rewrite-percentage", "0")


def indexes_of(r: redis.Redis, reps: list[str]) -> dict[str, list[float | None]]:
    """Every sorted set a representative is in, with each one's score (None: not in it). Read
    while the database holds the representatives alone, so the scan is short."""
    found = {}
    for key in r.scan_iter(_type="zset", count=1000):
        scores = r.zmscore(key, reps)
        if any(s is not None for s in scores):
            found[key] = scores
    return found


class Extra:
    """What a copy has of its own besides its id and index entries: nothing here."""

    def __call__(self, n: int, k: int, deal_id: str) -> dict[str, str]:
        """Copy ``n`` of representative ``k``: the hash fields it has of its own."""
        return {}

    def flush(self, pipe: Any) -> None:
        """Queue the writes gathered since the last flush (once per round trip)."""


def copy_deals(r: redis.Redis, reps: list[str], start: int, stop: int,
               id_of: Callable[[int], str], extra: Extra | None = None) -> None:
    """Deals ``start`` .. ``stop - 1`` (ids ``id_of(n)``) as copies of ``reps[n % len(reps)]``:
    its hash and event log (``COPY``, in Redis), its sorted-set entries with its scores, and
    what ``extra`` adds. CHUNK copies per round trip, each index's entries in one ``ZADD``."""
    index = indexes_of(r, reps)
    extra = extra or Extra()
    for first in range(start, stop, CHUNK):
        pipe = r.pipeline(transaction=False)
        entries: dict[str, dict[str, float]] = {key: {} for key in index}
        for n in range(first, min(first + CHUNK, stop)):
            k, deal_id = n % len(reps), id_of(n)
            pipe.copy(keys.deal(reps[k]), keys.deal(deal_id))
            pipe.copy(keys.events(reps[k]), keys.events(deal_id))
            pipe.hset(keys.deal(deal_id), mapping={"id": deal_id, **extra(n, k, deal_id)})
            for key, scores in index.items():
                if scores[k] is not None:
                    entries[key][deal_id] = scores[k]
        for key, members in entries.items():
            if members:
                pipe.zadd(key, members)
        extra.flush(pipe)
        pipe.execute()


class CounterSums:
    """Stands in for a transition's Ops where ``portfolio_ops`` writes: adds its counter
    changes up, ``times`` over (each copy of an advance counts what the advance counted)."""

    def __init__(self) -> None:
        self.sums: Counter[tuple[str, str]] = Counter()
        self.times = 1

    def hincr(self, key: str, field: str, delta: int) -> CounterSums:
        self.sums[key, field] += delta * self.times
        return self

    def sadd_count(self, key: str, member: str, counter_key: str, field: str) -> CounterSums:
        return self  # a first-time borrower: counted once, by the representative


class AdvanceCopies(Extra):
    """What a copy of a disbursed advance has of its own: its invoice and receivable lock, its
    payment reference, its limit reservation; and, once all are written (``finish``), what the
    copies add to the limit totals and the portfolio counters."""

    def __init__(self, r: redis.Redis, reps: list[str]):
        pipe = r.pipeline(transaction=False)
        for rep in reps:
            pipe.hgetall(keys.deal(rep))
        self.deals = [Deal(fields) for fields in pipe.execute()]
        for deal in self.deals:
            pipe.hget(keys.exposure_reservations(deal.fields["exposure"]), deal.id)
        self.cents = [int(c) for c in pipe.execute()]
        self.invoices = [d.get("invoices")[0]["number"] for d in self.deals]
        self.references = [d.get("loan")["reference"] for d in self.deals]
        self.locks = [(d.fields["exporter_uscc"], d.get("buyer")["code"]) for d in self.deals]
        for deal, invoice, ref in zip(self.deals, self.invoices, self.references, strict=True):
            # Copies change these by text: each must be there exactly once.
            assert deal.fields["invoices"].count(f'"number":"{invoice}"') == 1, deal.id
            assert deal.fields["loan"].count(f'"reference":{json.dumps(ref)}') == 1, deal.id
        self.copies = [0] * len(reps)
        self.receivables: dict[str, str] = {}
        self.reservations: dict[str, dict[str, int]] = {}

    def __call__(self, n: int, k: int, deal_id: str) -> dict[str, str]:
        deal, invoice, reference = self.deals[k], bs.invoice_of(n), bs.payout_reference(n)
        self.receivables[keys.receivable(*self.locks[k], invoice)] = deal_id
        exposure = keys.exposure_reservations(deal.fields["exposure"])
        self.reservations.setdefault(exposure, {})[deal_id] = self.cents[k]
        self.copies[k] += 1
        return {
            "invoices": deal.fields["invoices"].replace(f'"number":"{self.invoices[k]}"',
                                                        f'"number":"{invoice}"'),
            "loan": deal.fields["loan"].replace(f'"reference":{json.dumps(self.references[k])}',
                                                f'"reference":{json.dumps(reference)}'),
        }

    def flush(self, pipe: Any) -> None:
        if self.receivables:
            pipe.mset(self.receivables)
        for key, held in self.reservations.items():
            pipe.hset(key, mapping=held)
        self.receivables, self.reservations = {}, {}

    def finish(self, r: redis.Redis) -> None:
        counters, reserved = CounterSums(), Counter()
        for deal, cents, copies in zip(self.deals, self.cents, self.copies, strict=True):
            if copies:
                counters.times = copies
                approved = Deal({**deal.fields, "state": str(State.APPROVED)})
                portfolio_ops(approved, State.DISBURSED, {"loan": deal.get("loan")}, counters)
                reserved[deal.fields["exposure"]] += cents * copies
        pipe = r.pipeline(transaction=False)
        for (key, field), delta in counters.sums.items():
            pipe.hincrby(key, field, delta)
        for exposure, cents in reserved.items():
            pipe.incrby(keys.exposure_reserved_total(exposure), cents)
        pipe.execute()


@contextlib.contextmanager
def setup_writes(r: redis.Redis, appendfsync: str) -> Iterator[None]:
    """Setup writes with ``appendfsync everysec`` (with ``always`` a pipelined million deals
    would wait on hundreds of thousands of fsyncs), the timed steps with ``appendfsync``; one
    write then, so the AOF is on disk before anything is timed."""
    r.config_set("appendfsync", "everysec")
    try:
        yield
    finally:
        r.config_set("appendfsync", appendfsync)
        r.set("bench:synced", "1")
        r.delete("bench:synced")


def due_in_book(size: int, reps: int, due_reps: int) -> int:
    """How many of ``size`` advances are due when the first ``due_reps`` of ``reps`` are."""
    return size // reps * due_reps + min(size % reps, due_reps)


def make_book(r: redis.Redis, settings: Any, size: int, reps: int, due_share: float,
              buyers: int) -> tuple[int, float, float]:
    """A fresh database holding ``size`` open advances at BOC-NB; how many are due, and the
    seconds to make the representatives and to copy them."""
    reps = min(size, reps)
    due_reps = round(reps * due_share)
    t0 = time.perf_counter()
    bs.prepare(r, settings, reps, bs.due_dates(reps, due_reps, business_date(utcnow())), buyers)
    made = time.perf_counter() - t0
    ids = [bp.clone_id(n + 1) for n in range(reps)]
    t0 = time.perf_counter()
    copies = AdvanceCopies(r, ids)
    copy_deals(r, ids, reps, size, lambda n: bp.clone_id(n + 1), copies)
    copies.finish(r)
    return due_in_book(size, reps, due_reps), made, time.perf_counter() - t0


def make_queue(r: redis.Redis, settings: Any, size: int, reps: int) -> tuple[Any, float]:
    """A fresh database with ``size`` deals pending at BOC-NB; the app on it, and the seconds
    it took."""
    t0 = time.perf_counter()
    r.flushdb(asynchronous=True)  # a million deals take longer to free than a client waits
    now = datetime.now(UTC)
    bp.load_demo(r, now.date())
    app = bp.desk_app(r, settings)
    template = bp.real_deal(app.extensions["xinbao"], now.date())
    reps = min(size, reps)
    bp.seed_queue(r, template, 1, reps, now)
    ids = [template] + [bp.clone_id(n) for n in range(1, reps)]
    copy_deals(r, ids, reps, size, bp.clone_id)
    return app, time.perf_counter() - t0


def queue_pages(app: Any, size: int, requests: int,
                emit: Callable[[str], None]) -> dict[str, list[float]]:
    """Time the desk's queue and the API's, first and middle page; milliseconds by URL."""
    desk = bp.signed_in(app)
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bs.BANK_TOKEN}"
    middle = max(1, size // PER_PAGE // 2)
    api_url = f"/api/v1/deals?state=pending_bank&per_page={PER_PAGE}"
    timings = {}
    for client, label, url in (
        (desk, "officer desk queue, first page", "/bank/"),
        (desk, f"officer desk queue, page {middle}", f"/bank/?page={middle}"),
        (api, "API queue, first page", api_url),
        (api, f"API queue, page {middle}", f"{api_url}&page={middle}"),
    ):
        times, cpu = bp.timed(client, url, requests, 20)
        timings[url] = times
        emit(f"{label} at {size} pending: p50={bp.percentile(times, 50):.1f} ms "
             f"p95={bp.percentile(times, 95):.1f} ms p99={bp.percentile(times, 99):.1f} ms, "
             f"app cpu {cpu:.1f} ms (GET {url})")
    return timings


def memory(r: redis.Redis) -> str:
    info = r.info("memory")
    aof = r.info("persistence").get("aof_current_size", 0)
    return (f"redis used_memory {info['used_memory'] / 2**20:.0f} MiB, rss "
            f"{info['used_memory_rss'] / 2**20:.0f} MiB, AOF {aof / 2**20:.0f} MiB")


def redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def redis_per_deal(r: redis.Redis, cpu_before: float, deals: int) -> str:
    """Redis's CPU per deal since ``cpu_before``, and the commands that took most of it since
    the last CONFIG RESETSTAT (usec per call, EVALSHA with the commands it ran): what grows
    with the size of the data."""
    stats = r.info("commandstats")
    stats.pop("cmdstat_config|resetstat", None)
    top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:5]
    return (f"redis cpu {(redis_cpu(r) - cpu_before) * 1e6 / deals:.0f} us per deal; " + ", ".join(
        f"{name.removeprefix('cmdstat_')} {v['usec_per_call']:.1f}" for name, v in top)
        + " us per call")


def p50_p95(times: list[float]) -> str:
    return f"{bp.percentile(times, 50):.1f}/{bp.percentile(times, 95):.1f} ms"


def one_size(r: redis.Redis, settings: Any, size: int, reps: int, due_share: float,
             buyers: int, requests: int, appendfsync: str,
             emit: Callable[[str], None]) -> dict[str, float]:
    """The book, its sweep and portfolio, then the queue, at ``size`` deals; the figures."""
    with setup_writes(r, appendfsync):
        due, made, copied = make_book(r, settings, size, reps, due_share, buyers)
    assert r.zcard(keys.due_dates()) == size
    assert r.zcount(keys.due_dates(), "-inf", epoch_seconds(utcnow())) == due
    emit(f"scale: {size} open advances at {bp.BANK}, {due} due now ({min(size, reps)} disbursed "
         f"by the workflow in {made:.1f} s, {size - min(size, reps)} copies in {copied:.1f} s; "
         f"{memory(r)})")
    r.config_resetstat()
    cpu = redis_cpu(r)
    sweep = bs.sweep_until_done(build_workflow(r, settings), f"{due} of {size} due", due)
    load = os.getloadavg()[0]  # the machine is shared: how busy it was while the sweep ran
    emit(f"{sweep.line()}; {redis_per_deal(r, cpu, max(sweep.moved, 1))}")
    assert sweep.moved == due and r.zcard(keys.by_state(State.OVERDUE)) == due
    book = bs.portfolio_pages(r, settings, size, requests, emit)
    with setup_writes(r, appendfsync):
        app, queued = make_queue(r, settings, size, reps)
    assert r.zcard(keys.bank_queue(bp.BANK)) == size
    emit(f"scale: {size} deals pending at {bp.BANK} (in {queued:.1f} s; {memory(r)})")
    queue = queue_pages(app, size, requests, emit)
    r.flushdb(asynchronous=True)
    desk_q, api_q = "/bank/", f"/api/v1/deals?state=pending_bank&per_page={PER_PAGE}"
    took = sum(sweep.runs)
    emit(f"scale at {size} deals: sweep {sweep.moved} due ({sweep.moved / size:.0%}) in "
         f"{took:.1f} s = {sweep.moved / took:.0f} deals/s (load average {load:.1f}); queue "
         f"p50/p95 desk {p50_p95(queue[desk_q])}, API {p50_p95(queue[api_q])}; portfolio "
         f"p50/p95 desk {p50_p95(book['/bank/portfolio'])}, API "
         f"{p50_p95(book['/api/v1/portfolio'])}; setup {made + copied:.0f} s + {queued:.0f} s")
    return {
        f"scale_{size}_sweep_per_s": sweep.moved / took,
        f"scale_{size}_sweep_s": took,
        f"scale_{size}_queue_p95_ms": max(bp.percentile(t, 95) for t in queue.values()),
        f"scale_{size}_portfolio_p95_ms": max(bp.percentile(t, 95) for t in book.values()),
        f"scale_{size}_setup_s": made + copied + queued,
    }


def run(sizes: Iterable[int], due_share: float, buyers: int, requests: int, appendfsync: str,
        work: Path, emit: Callable[[str], None] = print, reps: int = REPS) -> dict[str, float]:
    """Each size in turn on one private Redis, emptied between them; the figures by name."""
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    server = RedisServer(work / "redis-scale", appendonly=True, fsync=appendfsync,
                         extra=NO_REWRITE).start()
    out: dict[str, float] = {}
    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        settings = load_settings({"REDIS_URL": server.url})
        for size in sizes:
            out.update(one_size(r, settings, size, reps, due_share, buyers, requests,
                                appendfsync, emit))
        emit(f"scale: redis used_memory_peak "
             f"{r.info('memory')['used_memory_peak'] / 2**20:.0f} MiB")
        return out
    finally:
        server.stop()


def summary(figures: dict[str, float]) -> dict[str, float]:
    """The figures of the largest size measured, for the bench's last line."""
    sizes = [int(k.split("_")[1]) for k in figures if k.endswith("_sweep_per_s")]
    if not sizes:
        return {}
    size = max(sizes)
    return {
        "scale_deals": size,
        "scale_sweep_per_s": figures[f"scale_{size}_sweep_per_s"],
        "scale_queue_p95_ms": figures[f"scale_{size}_queue_p95_ms"],
        "scale_portfolio_p95_ms": figures[f"scale_{size}_portfolio_p95_ms"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="deals per book and queue, comma-separated")
    parser.add_argument("--due-share", type=float, default=DUE_SHARE)
    parser.add_argument("--buyers", type=int, default=bs.BUYERS)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="timed requests per page")
    parser.add_argument("--appendfsync", choices=("always", "everysec"),
                        default=os.environ.get("APPENDFSYNC", "always"))
    args = parser.parse_args()
    print(f"redis: {bp.redis_config(args.appendfsync)} {' '.join(NO_REWRITE)}", flush=True)
    return bench.run_alone(
        "scale",
        lambda work, emit: run(bench_naive.parse_sizes(args.sizes), args.due_share, args.buyers,
                               args.requests, args.appendfsync, work, emit),
    )


if __name__ == "__main__":
    raise SystemExit(main())
