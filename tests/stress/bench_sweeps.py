"""`make bench`, the servicing side at 100,000 open advances for one bank: the arrears sweep
(a realistic day with 5,000 due, and the worst case of all 100,000 due at once) and the
officer's portfolio page and GET /api/v1/portfolio.

Starts a private redis-server (AOF, ``appendfsync`` as the main bench), loads the demo data as
of a day 60 days back, puts ONE real deal through the workflow on a clock set to that day
(submit, verify, route, approve: it ends approved at BOC-NB) and clones it into approved deals
with their own id, buyer (``--buyers`` buyers in 30 countries), invoice and due date: the hash,
event log, and every index, reservation and lock an approved deal has. Each clone is then
disbursed by the workflow's own ``disburse`` step (value date that day, principal varying per
deal), its Lua transition queued on a pipeline instead of sent alone, so the due-date schedule,
the state indexes, the limit use and the portfolio counters are exactly what the domain writes.
The sweep runs in process on the real clock (``Workflow.sweep_arrears``, the body of the beat
task ``xinbao.sweep_arrears``), over and over until nothing is due; the pages through the real
Flask app with its test client, signed in as boc-officer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import redis

from tests.stress import bench_pages as bp
from tests.support import RedisServer
from web import build_workflow
from workflow import keys
from workflow.deal import Deal, rebuild, utcnow
from workflow.logs import configure_logging
from workflow.money import to_cents
from workflow.pipeline import Decision, Disbursement, Workflow
from workflow.portfolio import figures
from workflow.reference.records import exposure_of
from workflow.settings import load_settings
from workflow.states import State
from workflow.steps import business_date
from workflow.store import DealStore, epoch_seconds

ADVANCES = 100_000
DUE_TODAY = 5_000  # a realistic day: 5 % of the book falls due at once
BUYERS = 1_000
COUNTRIES = ("DE", "US", "GB", "FR", "NL", "IT", "ES", "BE", "PL", "SE", "JP", "KR", "SG", "AU",
             "CA", "MX", "BR", "AE", "SA", "IN", "TH", "VN", "MY", "ID", "TR", "ZA", "CH", "AT",
             "DK", "NO")
BACK = 60  # the template is made, and every advance paid out, this many days ago
CHUNK = 2000  # clones per pipelined round trip
TEMPLATE_BUYER, TEMPLATE_INVOICE = "DE-0001", "INV-HX-1001"
BANK_TOKEN = "demo-bank-boc-nb-0001"  # data/demo.json's API token of BOC-NB


class Frozen:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CachedReference:
    """The reference repository with its bank and policy reads remembered: the seeding's 100,000
    disbursements read the same bank and policy (the sweep itself is timed uncached)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.bank = cache(inner.bank)
        self.policy = cache(inner.policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PipelinedStore(DealStore):
    """The deal store with its transitions queued on ``pipe`` (the same Lua script, keys and
    arguments the domain sends one at a time), and deals read from memory."""

    def __init__(self, client: redis.Redis, pipe: Any, deals: dict[str, Deal]):
        super().__init__(client)
        self.deals = deals
        script = self._transition

        def queued(keys: list[str], args: list[str]) -> list[Any]:
            script(keys=keys, args=args, client=pipe)
            return ["OK", int(args[0]) + 1]

        self._transition = queued

    def get(self, deal_id: str) -> Deal | None:
        return self.deals.get(deal_id)


def template_deal(r: redis.Redis, flow: Workflow, day: date) -> str:
    """Haixin's INV-HX-1001 through submit, verify, route and BOC-NB's approval on ``day``."""
    deal_id = bp.real_deal(flow, day)
    flow.clock.now += timedelta(minutes=5)
    deal = flow.decide(deal_id, bp.BANK, Decision(approve=True, officer=bp.OFFICER))
    assert deal.state == State.APPROVED, deal
    return deal_id


def invoice_of(n: int) -> str:
    """Clone ``n``'s invoice number (its receivable lock is its own)."""
    return f"INV-B-{n:07d}"


def payout_reference(n: int) -> str:
    """The bank's payment reference of clone ``n``'s disbursement."""
    return f"BENCH-PAY-{n}"


def buyer_of(n: int, buyers: int) -> tuple[str, str]:
    """(code, country) of clone ``n``'s buyer; a buyer is always in the same country."""
    b = n % buyers
    return f"BUY-{b:05d}", COUNTRIES[b % len(COUNTRIES)]


def seed(r: redis.Redis, flow: Workflow, template: str, count: int, due: list[date],
         buyers: int) -> None:
    """Clone the approved ``template`` into ``count`` approved deals, clone ``n`` due on
    ``due[n]``, and disburse each through ``flow``'s own step, CHUNK per round trip."""
    fields = r.hgetall(keys.deal(template))
    events = [json.loads(e) for e in r.lrange(keys.events(template), 0, -1)]
    uscc, bank_id = fields["exporter_uscc"], fields["bank_id"]
    template_due = Deal(fields).application.invoices[0].due_date.isoformat()
    approved_score = r.zscore(keys.bank_state(bank_id, State.APPROVED), template)
    lapse_score = r.zscore(keys.approval_lapses(), template)
    approved = Decimal(fields["approved_amount"])
    reserved = to_cents(Decimal(fields["reserved_amount"]))
    value_date = business_date(flow.clock())
    for start in range(0, count, CHUNK):
        pipe = r.pipeline(transaction=False)
        deals: dict[str, Deal] = {}
        for n in range(start, min(start + CHUNK, count)):
            deal_id = bp.clone_id(n + 1)
            code, country = buyer_of(n, buyers)
            invoice = invoice_of(n)
            exposure = exposure_of(fields["policy_no"], code, fields["currency"])
            swaps = ((template, deal_id), (TEMPLATE_BUYER, code), (TEMPLATE_INVOICE, invoice),
                     (template_due, due[n].isoformat()),
                     ('"country":"DE"', f'"country":"{country}"'),
                     (fields["exposure"], exposure))

            def swap(text: str, swaps: tuple = swaps) -> str:
                for old, new in swaps:
                    text = text.replace(old, new)
                return text

            clone = {k: swap(v) for k, v in fields.items()}
            log = [{**e, "set": {k: swap(v) for k, v in e["set"].items()}} for e in events]
            if n == 0:
                assert rebuild(log) == clone, "a clone's event log must rebuild its hash"
            deals[deal_id] = Deal(clone)
            pipe.hset(keys.deal(deal_id), mapping=clone)
            pipe.rpush(keys.events(deal_id), *(json.dumps(e, separators=(",", ":")) for e in log))
            pipe.zadd(keys.by_state(State.APPROVED), {deal_id: approved_score})
            pipe.zadd(keys.bank_state(bank_id, State.APPROVED), {deal_id: approved_score})
            pipe.zadd(keys.by_bank(bank_id), {deal_id: approved_score + n / 1000})
            pipe.zadd(keys.by_exporter(uscc), {deal_id: approved_score + n / 1000})
            pipe.zadd(keys.approval_lapses(), {deal_id: lapse_score})
            pipe.hset(keys.exposure_reservations(exposure), deal_id, reserved)
            pipe.incrby(keys.exposure_reserved_total(exposure), reserved)
            pipe.set(keys.receivable(uscc, code, invoice), deal_id)
        flow.store = PipelinedStore(r, pipe, deals)
        for n, deal_id in enumerate(deals, start):
            principal = approved - Decimal(n % 1000) * 10
            flow.disburse(deal_id, bank_id, Disbursement("bench", principal, value_date,
                                                         payout_reference(n)))
        pipe.execute()


@dataclass
class Sweep:
    label: str
    due: int
    runs: list[float]  # seconds per sweep_arrears call that moved something
    moved: int
    cpu: float

    def line(self) -> str:
        total = sum(self.runs)
        per = sorted(self.runs)[len(self.runs) // 2] * 1000 if self.runs else float("nan")
        return (f"arrears sweep, {self.label}: {self.moved} of {self.due} due moved overdue in "
                f"{total:.1f} s = {self.moved / total:.0f} deals/s ({len(self.runs)} sweep runs "
                f"of batches of 500, median {per:.0f} ms each; bench cpu "
                f"{self.cpu * 1000 / self.moved:.2f} ms per deal)")


def sweep_until_done(flow: Workflow, label: str, due: int) -> Sweep:
    """Run the sweep as beat's task does, one call after another, until it moves nothing."""
    runs, moved = [], 0
    cpu = time.process_time()
    while True:
        t0 = time.perf_counter()
        done = flow.sweep_arrears()
        if not done:
            break
        runs.append(time.perf_counter() - t0)
        moved += len(done)
    return Sweep(label, due, runs, moved, time.process_time() - cpu)


def prepare(r: redis.Redis, settings: Any, count: int, due: list[date], buyers: int) -> float:
    """A fresh database: the demo data as of BACK days ago, the template, ``count`` advances."""
    r.flushdb()
    today = business_date(utcnow())
    day = today - timedelta(days=BACK)
    bp.load_demo(r, day)
    flow = build_workflow(r, settings)
    flow.clock = Frozen(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=2))
    template = template_deal(r, flow, day)
    flow.clock.now += timedelta(minutes=5)
    flow.reference = CachedReference(flow.reference)
    t0 = time.perf_counter()
    seed(r, flow, template, count, due, buyers)
    return time.perf_counter() - t0


def due_dates(count: int, due_now: int, today: date) -> list[date]:
    """``due_now`` advances due 1-30 days ago (past due, none yet at its notice deadline), the
    rest spread over the next 90 days."""
    return [today - timedelta(days=1 + n % 30) if n < due_now
            else today + timedelta(days=1 + n % 90) for n in range(count)]


def run(count: int, due_now: int, buyers: int, requests: int, appendfsync: str,
        workdir: Path) -> list[str]:
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    server = RedisServer(workdir / "redis-sweeps", appendonly=True, fsync=appendfsync).start()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        settings = load_settings({"REDIS_URL": server.url})
        today = business_date(utcnow())
        for label, due in ((f"{due_now} of {count} due", due_now), (f"all {count} due", count)):
            seeded = prepare(r, settings, count, due_dates(count, due, today), buyers)
            scheduled = r.zcard(keys.due_dates())
            say(f"servicing: {scheduled} advances disbursed at {bp.BANK} ({buyers} buyers), "
                f"{r.zcount(keys.due_dates(), '-inf', epoch_seconds(utcnow()))} due now "
                f"(seeded in {seeded:.1f} s; redis used_memory "
                f"{r.info('memory')['used_memory'] / 2**20:.0f} MiB)")
            assert scheduled == count, scheduled
            sweep = sweep_until_done(build_workflow(r, settings), label, due)
            say(sweep.line())
            assert sweep.moved == due and r.zcard(keys.by_state(State.OVERDUE)) == due
            if due == due_now:
                portfolio_pages(r, settings, count, requests, say)
        return lines
    finally:
        server.stop()


def portfolio_pages(
    r: redis.Redis, settings: Any, count: int, requests: int, say: Callable[[str], None]
) -> dict[str, list[float]]:
    """Time the officer's portfolio page and the API's portfolio, p50/p95 as bench_pages; the
    milliseconds of each request, by URL."""
    app = bp.desk_app(r, settings)
    got = figures(r, bp.BANK)
    pipe = r.pipeline(transaction=False)
    for state in (State.DISBURSED, State.OVERDUE):
        pipe.zcard(keys.bank_state(bp.BANK, state))
    open_deals = sum(pipe.execute())
    say(f"portfolio of {bp.BANK}: {open_deals} open advances, outstanding "
        f"{got['outstanding']}, overdue {got['overdue']}, "
        f"{sum(len(v) for v in got['by_buyer'].values())} buyers, "
        f"{sum(len(v) for v in got['by_country'].values())} countries")
    desk = bp.signed_in(app)
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {BANK_TOKEN}"
    timings = {}
    for client, label, url in ((desk, "officer portfolio page", "/bank/portfolio"),
                               (api, "API portfolio", "/api/v1/portfolio")):
        times, cpu = bp.timed(client, url, requests, 20)
        timings[url] = times
        say(f"{label} at {count} open advances: p50={bp.percentile(times, 50):.1f} ms "
            f"p95={bp.percentile(times, 95):.1f} ms p99={bp.percentile(times, 99):.1f} ms, "
            f"app cpu {cpu:.1f} ms (GET {url}, {len(client.get(url).data) // 1024} KiB)")
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--advances", type=int, default=ADVANCES)
    parser.add_argument("--due", type=int, default=DUE_TODAY, help="due on the realistic day")
    parser.add_argument("--buyers", type=int, default=BUYERS)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per page")
    parser.add_argument("--appendfsync", choices=("always", "everysec"),
                        default=os.environ.get("APPENDFSYNC", "always"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"redis: {bp.redis_config(args.appendfsync)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="xinbao-bench-sweeps-") as tmp:
        run(args.advances, args.due, args.buyers, args.requests, args.appendfsync, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
