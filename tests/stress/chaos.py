"""``make chaos``: prove, with a real Redis (AOF, appendfsync always) and real worker processes,
that no accepted deal is lost, stranded, routed twice or duplicated while Celery workers are
SIGKILLed and Redis restarts; that a buyer limit is never over-committed under concurrent
submissions and approvals; that one invoice makes one live deal; and fuzz the API from its own
OpenAPI document with schemathesis.

    python -m tests.stress.chaos [--short] [--seed N] [--keep] [--only SCENARIO ...]

Its last line is machine-readable and any non-zero count (or any other broken invariant,
listed above it) makes it exit 1:

    chaos: submitted=… accepted=… lost=0 stranded=0 duplicated=0 overcommit=0 fuzz_5xx=0

``tests/stress/test_chaos.py`` runs the short version of every scenario under pytest.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import requests

from tests.stress import dataset as ds
from tests.stress.chaos_insurer import run_on_own_stack
from tests.stress.chaos_stack import (
    BANK,
    CLIENT_THREADS,
    FULL,
    SHORT,
    WORKING,
    Client,
    DealRecord,
    Expectation,
    Outcome,
    Sizes,
    Stack,
    Tally,
    audit,
    await_settled,
    chunks,
    count_outcomes,
    scenario,
    submit_all,
    types_of,
)
from tests.stress.chaos_sweeps import SWEEP_SCENARIOS, sweeps_under_kills  # noqa: F401
from tests.support import wait_until
from workflow import keys
from workflow.money import to_cents
from workflow.reference.records import exposure_of
from workflow.states import TERMINAL, State

TIGHT_LIMIT_ID = "STRESS-LIM-TIGHT"
# URI Too Long, Request Header Fields Too Large: gunicorn's limits, answered before the app runs.
SERVER_REFUSALS = frozenset({414, 431})
# Reservations count per buyer exposure (see BuyerLimit.exposure); TIGHT_BUYER has one limit.
TIGHT_EXPOSURE = exposure_of(ds.POLICY, ds.TIGHT_BUYER, "USD")
OFFERED = ["submitted", "verification_started", "verified", "offered_to_bank"]
SETTLED_PENDING = frozenset(str(s) for s in State) - WORKING
SETTLED_DECIDED = SETTLED_PENDING - {str(State.PENDING_BANK)}
OUTAGE_SECONDS = 6.0  # how long Redis stays down in each restart


def expect_offered_to(bank: str) -> Expectation:
    """A roomy, declared, valid deal: offered once, to the cheapest bank, and waiting there."""

    def check(record: DealRecord) -> str | None:
        f = record.fields
        if f.get("state") != State.PENDING_BANK:
            return f"reached {f.get('state')} ({f.get('reasons')}); its data implies pending_bank"
        offered = json.loads(f.get("offered_banks") or "[]")
        if offered != [bank] or f.get("bank_id") != bank:
            return f"offered to {offered} (holder {f.get('bank_id')}), expected [{bank}]"
        if types_of(record) != OFFERED:
            return f"events {types_of(record)}, expected {OFFERED}"
        return None

    return check


# --- scenario 1: the worker is SIGKILLed while deals flow ------------------------------------


@scenario("worker SIGKILL")
def worker_kills(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """Submit ``sizes.deals`` deals while the Celery worker is SIGKILLed (its whole process
    group) ``sizes.kills`` times, each time after it made progress, and restarted: every
    accepted deal must end offered once to the cheapest bank, with an exact event log."""
    r = stack.r
    client = Client(stack.base)
    indexes = stack.take(sizes.deals)
    offered_key = keys.by_bank(BANK)
    baseline = r.zcard(offered_key)
    kills: list[str] = []

    def chaos() -> None:
        for k in range(sizes.kills):
            target = baseline + (k + 1) * sizes.deals // (sizes.kills + 1)
            try:
                wait_until(
                    lambda t=target: r.zcard(offered_key) >= t,
                    120,
                    interval=0.05,
                    what=f"the worker to offer {target - baseline} deals",
                )
            except AssertionError as exc:
                tally.problem(f"worker kill {k + 1}: {exc} (a restarted worker made no progress)")
                return
            done = r.zcard(offered_key) - baseline
            stack.kill_worker()
            down = random.uniform(0.2, 1.0)
            time.sleep(down)  # the outage itself, not a wait for a condition
            stack.start_worker()
            kills.append(f"#{k + 1} after {done} offered, down {down:.1f}s")

    killer = threading.Thread(target=chaos, name="worker-killer", daemon=True)
    started = time.monotonic()
    killer.start()
    items = [(f"chaos-kill-{i}", ds.deal_body(i)) for i in indexes]
    outcomes = submit_all(client, items)
    submitted_in = time.monotonic() - started
    killer.join(180)
    ids = count_outcomes(tally, outcomes, expected=())
    waited = await_settled(r, ids, SETTLED_PENDING, sizes.settle_seconds, stack.dead)
    if len(kills) != sizes.kills:
        tally.problem(f"only {len(kills)} of {sizes.kills} worker kills happened")
    audit(r, ids, tally, expect_offered_to(BANK))
    tally.notes.append(f"SIGKILLed the worker {len(kills)}x: {'; '.join(kills)}")
    tally.notes.append(
        f"submitted in {submitted_in:.1f}s "
        f"({len(items) / max(submitted_in, 1e-6):.0f}/s), "
        f"all settled {waited:.1f}s later"
    )
    tally.notes.append(client.retried_note())


# --- scenario 2: Redis restarts while deals are submitted ------------------------------------


def error_shape_problem(body: Any) -> str | None:
    """None if ``body`` is the documented error: {"error": {"code", "message", "fields"}}."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"not {{'error': {{...}}}}: {body!r:.200}"
    error = body["error"]
    if set(error) != {"code", "message", "fields"}:
        return f"error keys {sorted(error)} are not code, message, fields"
    if not isinstance(error["code"], str) or not error["code"]:
        return f"error.code {error['code']!r} is not a non-empty string"
    if not isinstance(error["message"], str) or not error["message"]:
        return f"error.message {error['message']!r} is not a non-empty string"
    fields = error["fields"]
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
        for k, v in fields.items()
    ):
        return f"error.fields {fields!r:.200} is not an object of string lists"
    return None


@scenario("Redis restart")
def redis_restarts(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """Submit ``sizes.restart_deals`` deals while Redis is killed (SIGKILL, then SIGTERM, ...)
    and started again on the same port and AOF. While it is down the API must answer 503 in
    the error shape; the clients retry with their Idempotency-Key. Afterwards every accepted
    deal exists and is offered to the cheapest bank, and gunicorn, the worker and beat are the
    same processes, reconnected (a deal committed without its task proves beat and worker)."""
    r = stack.r
    client = Client(stack.base, give_up_after=120)
    indexes = stack.take(sizes.restart_deals)
    orphan_index, probe_indexes = indexes[-1], indexes[-1 - sizes.restarts : -1]
    accepted = Counter()
    lock = threading.Lock()
    pids = {name: stack.procs.running[name].pid for name in ("web", "worker", "beat")}
    restarts: list[str] = []
    probes: list[Outcome] = []
    finished = threading.Event()
    gate = threading.Event()  # the clients submit while it is set
    gate.set()

    def on_accept(_: str) -> None:
        with lock:
            accepted["n"] += 1

    since = [time.time()]

    def in_flight() -> int:
        """Tasks a worker took since the scenario started or Redis last came back and has not
        acknowledged (acks_late). Older entries are messages whose worker lost them (a kill,
        an outage): kombu restores those after the visibility timeout; the sweeper does not
        wait for that."""
        return r.zcount("unacked_index", since[0], "+inf")

    def kill_mid_task(k: int) -> tuple[bool, float]:
        """Kill Redis while the worker runs exactly one task and polls for the next: the state
        a lightly loaded system spends its life in. The clients pause, the queue drains, one
        probe deal is submitted, and Redis dies once a worker holds exactly one task and the
        queue is empty. Returns whether that moment was seen, and when Redis went down."""
        gate.clear()
        try:
            wait_until(
                lambda: stack.dead() or (r.llen("celery") == 0 and in_flight() == 0),
                30,
                interval=0.005,
                what="the queue to drain",
            )
        except AssertionError as exc:
            tally.problem(f"Redis restart {k + 1}: {exc}")
        probes.append(client.submit(ds.deal_body(probe_indexes[k]), f"chaos-redis-probe-{k}"))
        deadline = time.monotonic() + 3
        caught = False
        while time.monotonic() < deadline and not caught:
            pipe = r.pipeline(transaction=False)
            pipe.llen("celery").zcount("unacked_index", since[0], "+inf")
            queued, taken = pipe.execute()
            caught = queued == 0 and taken == 1
        down_at = time.monotonic()
        if k % 2 == 0:
            stack.server.kill()
        else:
            stack.server.stop()
        gate.set()
        return caught, down_at

    def chaos() -> None:
        for k in range(sizes.restarts):
            target = (k + 1) * sizes.restart_deals // (sizes.restarts + 1)
            try:
                wait_until(
                    lambda t=target: accepted["n"] >= t or finished.is_set(),
                    120,
                    interval=0.02,
                    what=f"{target} accepted deals",
                )
            except AssertionError as exc:
                tally.problem(f"Redis restart {k + 1}: {exc}")
                return
            caught, down_at = kill_mid_task(k)
            # While Redis is down, the API says 503 in the documented shape (redis-py retries
            # ~10 times with backoff first, so this takes a few seconds; Redis stays down).
            probe = client.call("GET", "/api/v1/deals", ds.EXPORTER_TOKEN, retry=False)
            try:
                alive = requests.get(f"{stack.base}/healthz", timeout=30).status_code
                health = requests.get(f"{stack.base}/readyz", timeout=30).status_code
            except requests.RequestException as exc:
                alive = health = repr(exc)
            if probe.status != 503 or error_shape_problem(probe.body):
                tally.problem(
                    f"while Redis was down GET /api/v1/deals answered {probe.status} "
                    f"{probe.body!r:.200} (expected 503 in the error shape)"
                )
            if health != 503 or alive != 200:
                tally.problem(
                    f"while Redis was down /readyz answered {health} (expected 503) and "
                    f"/healthz {alive} (expected 200: the process is alive)"
                )
            # The outage itself: longer than redis-py's own retries (10, backoff capped at 1 s),
            # so every client really loses its connection instead of riding the outage out.
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            down = time.monotonic() - down_at
            stack.server.start()  # same port, same dir: the AOF is replayed
            since[0] = time.time()
            how = "SIGKILL" if k % 2 == 0 else "SIGTERM"
            restarts.append(
                f"#{k + 1} {how} after {accepted['n']} accepted, "
                f"{'with one' if caught else 'WITHOUT one'} task in flight, "
                f"down {down:.1f}s, API said {probe.status}, /readyz {health}"
            )

    def submit(item: tuple[str | None, dict]) -> Outcome:
        gate.wait(60)
        outcome = client.submit(item[1], item[0])
        if outcome.status == 202:
            on_accept(outcome.body["id"])
        return outcome

    restarter = threading.Thread(target=chaos, name="redis-restarter", daemon=True)
    restarter.start()
    items = [(f"chaos-redis-{i}", ds.deal_body(i)) for i in indexes[: -1 - sizes.restarts]]
    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        outcomes = list(pool.map(submit, items))
    finished.set()
    restarter.join(180)
    ids = count_outcomes(tally, outcomes + probes, expected=())
    if len(restarts) != sizes.restarts:
        tally.problem(f"only {len(restarts)} of {sizes.restarts} Redis restarts happened")

    # Reconnected by themselves: the same processes, still running ...
    for name, pid in pids.items():
        proc = stack.procs.running.get(name)
        state = stack.condition(name) or (None if proc and proc.pid == pid else "was replaced")
        if state:
            tally.problem(
                f"{name} did not survive the Redis restarts ({state}); it said: "
                f"{stack.last_words(name)}"
            )
    # ... and a deal committed without its task (a crash between commit and publish) is
    # found by beat's sweep and verified and routed by the worker.
    orphan = commit_without_task(stack, orphan_index)
    ids.append(orphan)
    tally.notes.append(f"orphan probe {orphan} committed without a task after the restarts")
    waited = await_settled(r, ids, SETTLED_PENDING, sizes.settle_seconds, stack.dead)
    audit(r, ids, tally, expect_offered_to(BANK))
    tally.notes.append("restarted Redis: " + "; ".join(restarts))
    tally.notes.append(f"all settled {waited:.1f}s after the last submission")
    tally.notes.append(client.retried_note())


def commit_without_task(stack: Stack, index: int) -> str:
    """Commit a deal straight into the store and publish nothing: only the sweeper can save it."""
    from web import build_workflow
    from web.schemas import DealRequestSchema
    from workflow.settings import load_settings

    application = DealRequestSchema().load(ds.deal_body(index))
    flow = build_workflow(stack.r, load_settings(stack.env))
    return flow.submit(application, f"chaos-orphan-{index}").deal.id


# --- scenario 3: one buyer limit, many concurrent submissions and approvals ------------------


class Approver:
    """Bank officers of the cheapest bank approving each accepted deal as soon as it is offered
    to them, from ``threads`` threads, concurrently with the submissions still running."""

    def __init__(self, stack: Stack, client: Client, tally: Tally, threads: int = 3):
        self.stack, self.client, self.tally = stack, client, tally
        self.todo: queue.Queue[str] = queue.Queue()
        self.approved: set[str] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, name=f"approver-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self) -> Approver:
        for thread in self.threads:
            thread.start()
        return self

    def add(self, deal_id: str) -> None:
        self.todo.put(deal_id)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        token = ds.BANK_TOKENS[BANK]
        while True:
            try:
                deal_id = self.todo.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            state = self.stack.r.hget(keys.deal(deal_id), "state")
            if state in WORKING:
                if not self.stop.is_set():
                    time.sleep(0.01)
                    self.todo.put(deal_id)
                continue
            if state != State.PENDING_BANK:
                continue  # rejected (no room): nothing to decide
            answer = self.client.call(
                "POST", f"/api/v1/deals/{deal_id}/decision", token, body={"decision": "approve"}
            )
            retried_after_commit = (  # a retry whose first attempt did approve it
                answer.status == 409
                and answer.attempts > 1
                and self.stack.r.hget(keys.deal(deal_id), "state") == State.APPROVED
            )
            if retried_after_commit or (
                answer.status == 200 and answer.body.get("state") == State.APPROVED
            ):
                with self._lock:
                    self.approved.add(deal_id)
            else:
                self.tally.problem(
                    f"approving {deal_id} answered {answer.status} {answer.body!r:.200}"
                )


class Sampler:
    """Reads a buyer limit's reserved total in a tight loop and remembers the highest value."""

    def __init__(self, r: redis.Redis, key: str, cap: int):
        self.r, self.key, self.cap = r, key, cap
        self.samples = self.over = self.highest = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            value = int(self.r.get(self.key) or 0)
            self.samples += 1
            self.highest = max(self.highest, value)
            self.over += value > self.cap
            time.sleep(0.002)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)


@scenario("tight limit")
def tight_limit(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """``sizes.tight`` concurrent submissions against the TIGHT buyer's limit, each of
    limit / ``sizes.tight_pass``, while the bank approves every deal offered to it: the reserved
    total never exceeds the limit at any sample, exactly ``tight_pass`` deals pass, the rest are
    rejected LIMIT_INSUFFICIENT, and the reserved total is the sum of the live reservations."""
    r = stack.r
    cap = to_cents(Decimal(ds.TIGHT_LIMIT))
    amount = (Decimal(ds.TIGHT_LIMIT) / sizes.tight_pass).quantize(Decimal("0.01"))
    assert to_cents(amount) * sizes.tight_pass == cap, "pick a tight_pass that divides the limit"
    client = Client(stack.base)
    numbers = stack.take_tight(sizes.tight)
    items = [
        (f"chaos-tight-{n}", ds.deal_body(0, amount=str(amount), buyer=ds.TIGHT_BUYER, number=n))
        for n in numbers
    ]
    reserved_key = keys.exposure_reserved_total(TIGHT_EXPOSURE)
    approver = Approver(stack, client, tally).start()
    with Sampler(r, reserved_key, cap) as sampler:
        try:
            outcomes = submit_all(client, items, threads=32, on_accept=approver.add)
            ids = count_outcomes(tally, outcomes, expected=())
            waited = await_settled(r, ids, SETTLED_DECIDED, sizes.settle_seconds, stack.dead)
        finally:
            approver.finish()
    if sampler.over:
        tally.bump(
            "overcommit",
            sampler.over,
            example=f"{sampler.over} of {sampler.samples} samples of {reserved_key} were "
            f"above the limit's {cap} cents (highest {sampler.highest})",
        )
    finals = audit(r, ids, tally, _expect_tight(to_cents(amount)))
    passed = sorted(i for i, s in finals.items() if s in (State.APPROVED, State.PENDING_BANK))
    rejected = [i for i, s in finals.items() if s == State.REJECTED]
    reserved = int(r.get(reserved_key) or 0)
    if reserved > cap:
        tally.bump("overcommit", example=f"{reserved_key} ends at {reserved} > {cap}")
    holds = {k: int(v) for k, v in r.hgetall(keys.exposure_reservations(TIGHT_EXPOSURE)).items()}
    if sum(holds.values()) != reserved:
        tally.problem(
            f"{reserved_key} is {reserved} but its reservations sum to {sum(holds.values())}"
        )
    if sorted(holds) != passed or any(v != to_cents(amount) for v in holds.values()):
        tally.problem(
            f"the reservations ({len(holds)}) are not exactly the {len(passed)} live "
            "deals' invoice totals"
        )
    if len(passed) != sizes.tight_pass:
        tally.problem(f"{len(passed)} deals passed; exactly {sizes.tight_pass} fit the limit")
    if set(approver.approved) != set(passed):
        tally.problem(f"the bank approved {len(approver.approved)} deals; {len(passed)} passed")
    tally.notes.append(
        f"{len(passed)} passed ({len(approver.approved)} approved by the bank "
        f"concurrently), {len(rejected)} rejected LIMIT_INSUFFICIENT; "
        f"settled {waited:.1f}s after the last submission"
    )
    tally.notes.append(
        f"{reserved_key}: {sampler.samples} samples, highest {sampler.highest} "
        f"<= {cap}, ends at {reserved} = the sum of {len(holds)} reservations"
    )
    tally.notes.append(client.retried_note())


def _expect_tight(cents: int) -> Expectation:
    def check(record: DealRecord) -> str | None:
        f = record.fields
        if f.get("state") == State.APPROVED:
            if types_of(record) != [*OFFERED, "approved"]:
                return f"approved with events {types_of(record)}"
            if json.loads(f.get("offered_banks") or "[]") != [BANK]:
                return f"approved after offers to {f.get('offered_banks')}"
            if to_cents(Decimal(f.get("reserved_amount") or "0")) != cents:
                return f"reserved {f.get('reserved_amount')} on the limit"
            return None
        if f.get("state") == State.REJECTED:
            if json.loads(f.get("reasons") or "[]") != ["LIMIT_INSUFFICIENT"]:
                return f"rejected for {f.get('reasons')}, expected only LIMIT_INSUFFICIENT"
            if types_of(record) != ["submitted", "verification_started", "rejected"]:
                return f"rejected with events {types_of(record)}"
            return None
        return f"ended {f.get('state')}: expected approved or rejected LIMIT_INSUFFICIENT"

    return check


# --- scenario 4: one invoice, many concurrent submissions ------------------------------------


@scenario("same invoice")
def same_invoice(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """``sizes.same_invoice`` concurrent submissions of one invoice (each with its own
    Idempotency-Key): exactly one 202, every other a 409 DUPLICATE_RECEIVABLE, one live deal."""
    r = stack.r
    client = Client(stack.base)
    index = stack.take(1)[0]
    body = ds.deal_body(index)
    items = [(f"chaos-same-{index}-{n}", body) for n in range(sizes.same_invoice)]
    outcomes = submit_all(client, items, threads=min(64, sizes.same_invoice))
    ids = count_outcomes(tally, outcomes, expected=[(409, "DUPLICATE_RECEIVABLE")])
    if len(set(ids)) > 1:
        tally.bump(
            "duplicated",
            len(set(ids)) - 1,
            example=f"one invoice made {len(set(ids))} deals: {sorted(set(ids))}",
        )
    elif not ids:
        tally.problem("no submission of the invoice was accepted")
    statuses = Counter(o.status for o in outcomes)
    tally.notes.append(
        "answers: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items(), key=str))
    )
    for outcome in outcomes:
        if outcome.status == 409 and error_shape_problem(outcome.body):
            tally.problem(f"409 body: {error_shape_problem(outcome.body)}")
            break
    holder = r.get(keys.receivable(ds.EXPORTER, ds.buyer_of(index), ds.invoice_number(index)))
    if ids and holder != ids[0]:
        tally.problem(f"the receivable lock is held by {holder}, not the accepted {ids[0]}")
    await_settled(r, ids, SETTLED_PENDING, sizes.settle_seconds, stack.dead)
    audit(r, ids, tally, expect_offered_to(BANK))
    tally.notes.append(client.retried_note())


# --- scenario 5: fuzz the API from its own OpenAPI document ----------------------------------


@scenario("fuzz")
def fuzz(stack: Stack, sizes: Sizes, tally: Tally, seed: int | None = None) -> None:
    """schemathesis generates valid and invalid requests for every operation of
    /api/v1/openapi.json, sent with an exporter token and then with a bank token: no 5xx, and
    every 4xx body in the documented error shape (checked here, beyond schemathesis's checks)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed
    from schemathesis import GenerationMode

    seed = random.randrange(2**32) if seed is None else seed
    schema = schemathesis.openapi.from_url(f"{stack.base}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    session = requests.Session()
    statuses: Counter[str] = Counter()
    shape_failures: Counter[str] = Counter()
    conformance: Counter[str] = Counter()
    unsendable: Counter[str] = Counter()
    requests_sent = 0
    from schemathesis.specs.openapi.checks import response_schema_conformance

    def check(case: Any, label: str, headers: dict) -> None:
        nonlocal requests_sent
        try:
            response = case.call(base_url=stack.base, session=session, headers=headers, timeout=30)
        except (requests.ConnectionError, requests.Timeout) as exc:
            tally.problem(f"{label}: the server dropped the request: {exc!r:.200}")
            return
        except Exception as exc:  # noqa: BLE001 - a request that HTTP cannot carry
            unsendable[type(exc).__name__] += 1
            return
        requests_sent += 1
        status = response.status_code
        statuses[f"{status // 100}xx"] += 1
        where = f"{label}: {case.method} {case.formatted_path}"
        if status >= 500:
            tally.bump(
                "fuzz_5xx",
                example=f"{where} -> {status} {response.content[:200]!r}\n{case.as_curl_command()}",
            )
        elif status in SERVER_REFUSALS:
            # gunicorn refuses a request line or header past its limits (4,094 bytes) before the
            # app sees it: a clear 4xx from the HTTP server, in its own format.
            statuses[f"{status} from gunicorn"] += 1
        elif status >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = response.content[:200]
            wrong = error_shape_problem(body)
            if wrong:
                shape_failures[f"{where} -> {status}: {wrong}"] += 1
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except Exception as exc:  # noqa: BLE001 - schemathesis's FailureGroup
            first = str(exc).strip().splitlines()
            conformance[f"{where} -> {status}: {first[0] if first else repr(exc)}"] += 1

    def fuzzer(strategy: Any, label: str, headers: dict) -> Callable[[], None]:
        @settings(
            max_examples=sizes.fuzz_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            check(case, label, headers)

        return hypothesis_seed(seed)(run)

    for who, token in (("exporter", ds.EXPORTER_TOKEN), ("bank", ds.BANK_TOKENS[BANK])):
        headers = {"Authorization": f"Bearer {token}"}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{who} {operation.label} {mode.value}"
                fuzzer(operation.as_strategy(generation_mode=mode), label, headers)()
    for what, n in shape_failures.most_common(10):
        tally.problem(f"error shape x{n}: {what}")
    for what, n in conformance.most_common(10):
        tally.problem(f"response_schema_conformance x{n}: {what}")
    tally.notes.append(
        f"seed {seed}: {requests_sent} requests over {len(operations)} "
        f"operations x 2 modes x 2 tokens, {sizes.fuzz_examples} examples each: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))
    )
    if unsendable:
        tally.notes.append(
            "not sendable over HTTP (skipped): "
            + ", ".join(f"{k} x{v}" for k, v in unsendable.items())
        )


# --- the ledger: invariants over everything the run left behind ------------------------------


@scenario("ledger")
def ledger(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """Over every deal of the run: no receivable in two live deals, each live deal holds its
    receivable lock, and each buyer limit's reserved total is the sum of the live deals'
    reservations (the invoice total until disbursement, then the principal outstanding) and
    within the limit."""
    r = stack.r
    ids = r.zrange(keys.by_exporter(ds.EXPORTER), 0, -1)
    live: dict[tuple[str, str], list[str]] = defaultdict(list)
    on_limit: dict[str, dict[str, int]] = defaultdict(dict)
    ended = {str(s) for s in TERMINAL}  # their receivables and reservations are released
    for part in chunks(ids, 1000):
        pipe = r.pipeline(transaction=False)
        for deal_id in part:
            pipe.hmget(
                keys.deal(deal_id), "state", "buyer", "invoices", "exposure", "reserved_amount"
            )
        for deal_id, (state, buyer, invoices, limit_id, total) in zip(
            part, pipe.execute(), strict=True
        ):
            if state is None or state in ended:
                continue
            code = json.loads(buyer)["code"]
            for invoice in json.loads(invoices):
                live[(code, invoice["number"])].append(deal_id)
            if limit_id:
                on_limit[limit_id][deal_id] = to_cents(Decimal(total))
    doubled = {k: v for k, v in live.items() if len(v) > 1}
    for (code, number), holders in doubled.items():
        tally.bump(
            "duplicated",
            len(holders) - 1,
            example=f"receivable {code}/{number} is in {len(holders)} live deals",
        )
    pipe = r.pipeline(transaction=False)
    receivables = list(live)
    for code, number in receivables:
        pipe.get(keys.receivable(ds.EXPORTER, code, number))
    for (code, number), holder in zip(receivables, pipe.execute(), strict=True):
        if holder not in live[(code, number)]:
            tally.problem(f"receivable {code}/{number}: lock held by {holder}, not its live deal")
    limits = {
        exposure_of(lim["policy_no"], lim["buyer_code"], lim["currency"]): to_cents(
            Decimal(lim["amount"])
        )
        for lim in ds.reference(0)["limits"]
    }
    for limit_id, cap in limits.items():
        reserved = int(r.get(keys.exposure_reserved_total(limit_id)) or 0)
        holds = {k: int(v) for k, v in r.hgetall(keys.exposure_reservations(limit_id)).items()}
        if reserved > cap:
            tally.bump("overcommit", example=f"{limit_id}: {reserved} reserved > {cap}")
        if reserved != sum(holds.values()) or holds != on_limit.get(limit_id, {}):
            tally.problem(
                f"{limit_id}: reserved {reserved}, reservations sum "
                f"{sum(holds.values())} over {len(holds)} deals, live deals on it "
                f"{len(on_limit.get(limit_id, {}))}"
            )
    tally.notes.append(
        f"{len(ids)} deals, {len(live)} live receivables, {len(limits)} limits balanced"
    )


# Runs after SCENARIOS, on a stack of its own (tests/stress/chaos_insurer.py).
INSURER_SCENARIO = "insurer_faults"
SCENARIOS: tuple[Callable[..., Tally], ...] = (
    worker_kills,
    redis_restarts,
    tight_limit,
    same_invoice,
    fuzz,
    *SWEEP_SCENARIOS,
    ledger,
)


# --- the command ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.stress.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="the small version of make test")
    parser.add_argument("--seed", type=int, help="the fuzzer's seed (default: random)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, AOF)")
    parser.add_argument("--log-level", default="WARNING", help="of gunicorn, worker and beat")
    parser.add_argument(
        "--only",
        action="append",
        choices=[s.__name__ for s in SCENARIOS] + [INSURER_SCENARIO],
        help="run only this scenario (repeatable)",
    )
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("chaos: needs redis-server on PATH (apt-get install redis-server)", file=sys.stderr)
        return 2
    sizes = SHORT if args.short else FULL
    workdir = Path(tempfile.mkdtemp(prefix="xinbao-chaos-"))
    stack = Stack(workdir, sizes, loglevel=args.log_level)
    started = time.monotonic()
    tallies: list[Tally] = []
    print(f"chaos: {'short' if args.short else 'full'} run, work dir {workdir}", flush=True)
    shared = [run for run in SCENARIOS if not args.only or run.__name__ in args.only]
    try:
        if shared:
            stack.start()
            print(
                f"chaos: stack up in {time.monotonic() - started:.1f}s at {stack.base} "
                f"(Redis {stack.server.url}, AOF appendfsync always)",
                flush=True,
            )
        for run in shared:
            kwargs = {"seed": args.seed} if run is fuzz else {}
            tally = run(stack, sizes, **kwargs)
            stack.heal(tally)
            tallies.append(tally)
            print(tally.summary(), flush=True)
        stack.stop()
        if not args.only or INSURER_SCENARIO in args.only:
            # Its own stack: its web and worker use the HTTP insurer adapter.
            tallies.append(run_on_own_stack(workdir / "insurer", sizes, args.log_level))
    except Exception:  # noqa: BLE001 - reported; the run fails
        crash = Tally("stack")
        crash.problem(traceback.format_exc())
        tallies.append(crash)
        print(crash.summary(), flush=True)
    finally:
        total = Tally.total(tallies)
        if total.failed:
            print(stack.logs()[-12000:], flush=True)
        stack.stop()
    keep = args.keep or total.failed
    if keep:
        print(f"chaos: logs and the AOF are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"chaos: {'FAILED' if total.failed else 'passed'} in "
        f"{time.monotonic() - started:.0f}s; {len(total.problems)} problem line(s) above"
    )
    print(total.line(), flush=True)
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
