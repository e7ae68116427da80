"""The chaos runs' machinery (``tests/stress/chaos.py`` and ``chaos_sweeps.py``): the sizes of
the full and short runs, each scenario's Tally, the private stack (Redis with AOF, gunicorn, a
Celery worker and beat), a retrying API client, and the audit of every deal a scenario made."""

from __future__ import annotations

import json
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from tests.stress import dataset as ds
from tests.support import Processes, RedisServer, free_port, wait_until, web_answers
from workflow import keys
from workflow.deal import rebuild
from workflow.states import TERMINAL, WORKER_OWNED, State

BANK = ds.BANKS[0]  # the cheapest bank: where every roomy deal must be offered first
ONCE = ("submitted", "verification_started", "verified", "offered_to_bank", "approved", "rejected")
# A deal held while the insurer was away starts its verification again after each hold.
ONCE_DESPITE_HOLDS = tuple(t for t in ONCE if t != "verification_started")
WORKING = frozenset(str(s) for s in WORKER_OWNED)  # a worker owns the next step
NON_TERMINAL = tuple(str(s) for s in State if s not in TERMINAL)
CLIENT_THREADS = 16
RETRYABLE = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: the full run and the short one of ``make test``."""

    deals: int  # submitted while the worker is SIGKILLed ...
    kills: int  # ... this many times
    restart_deals: int  # submitted while Redis is restarted ...
    restarts: int  # ... this many times (SIGKILL, then SIGTERM, alternately)
    tight: int  # submissions against TIGHT_LIMIT ...
    tight_pass: int  # ... of which exactly this many fit
    same_invoice: int  # concurrent submissions of one invoice
    fuzz_examples: int  # schemathesis examples per operation, generation mode and token
    settle_seconds: float  # how long deals may take to settle after the last submission
    sweep_due: int  # disbursed advances past their due date (and grace) for the arrears sweep
    sweep_kills: int  # the worker is SIGKILLed this many times while the sweeps run
    lapses: int  # approvals never disbursed whose lapse time has passed
    insurer_deals: int = 0  # submitted while the insurer simulator's faults cycle ...
    insurer_claims: int = 0  # ... and advances past due whose notice and claim are filed

    @property
    def invoices(self) -> int:
        return self.deals + self.restart_deals + 2  # + the same-invoice one and a spare


FULL = Sizes(
    2000,
    4,
    400,
    2,
    500,
    200,
    200,
    100,
    120,
    sweep_due=3000,
    sweep_kills=3,
    lapses=300,
    insurer_deals=1000,
    insurer_claims=40,
)
SHORT = Sizes(
    150,
    2,
    60,
    1,
    60,
    20,
    30,
    6,
    60,
    sweep_due=100,
    sweep_kills=2,
    lapses=20,
    insurer_deals=60,
    insurer_claims=6,
)


# --- counts -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one scenario counted; ``problems`` are broken invariants the counts do not name."""

    name: str
    submitted: int = 0
    accepted: int = 0
    lost: int = 0
    stranded: int = 0
    duplicated: int = 0
    overcommit: int = 0
    fuzz_5xx: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    COUNTS = ("submitted", "accepted", "lost", "stranded", "duplicated", "overcommit", "fuzz_5xx")
    FAILURES = ("lost", "stranded", "duplicated", "overcommit", "fuzz_5xx")

    def problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    def bump(self, name: str, by: int = 1, example: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)
            if example and sum(p.startswith(f"{name}:") for p in self.problems) < 10:
                self.problems.append(f"{name}: {example}")

    @property
    def failed(self) -> bool:
        return any(getattr(self, n) for n in self.FAILURES) or bool(self.problems)

    def summary(self) -> str:
        counts = " ".join(f"{n}={getattr(self, n)}" for n in self.COUNTS)
        lines = [
            f"[{'FAIL' if self.failed else ' ok '}] {self.name}: {counts} ({self.seconds:.1f}s)"
        ]
        lines += [f"         {note}" for note in self.notes]
        lines += [f"   !!    {p}" for p in self.problems[:40]]
        if len(self.problems) > 40:
            lines.append(f"   !!    ... and {len(self.problems) - 40} more")
        return "\n".join(lines)

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        total = cls("total")
        for tally in tallies:
            for name in cls.COUNTS:
                setattr(total, name, getattr(total, name) + getattr(tally, name))
            total.problems += [f"{tally.name}: {p}" for p in tally.problems]
            total.seconds += tally.seconds
        return total

    def line(self) -> str:
        return "chaos: " + " ".join(f"{n}={getattr(self, n)}" for n in self.COUNTS)


def scenario(name: str) -> Callable:
    """Run the decorated scenario into a fresh Tally, timing it; an exception is a problem."""

    def wrap(func: Callable[..., None]) -> Callable[..., Tally]:
        def run(stack: Stack, sizes: Sizes, **kwargs: Any) -> Tally:
            tally = Tally(name)
            started = time.monotonic()
            try:
                func(stack, sizes, tally, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported, and the run fails
                tally.problem(f"scenario crashed: {exc!r}\n{traceback.format_exc()}")
            finally:
                tally.seconds = time.monotonic() - started
            return tally

        run.__name__ = func.__name__
        run.__doc__ = func.__doc__
        return run

    return wrap


# --- the stack --------------------------------------------------------------------------------


# kombu logs an acknowledgement lost with the broker connection at CRITICAL, but the worker
# goes on: the message is redelivered (acks_late, the visibility timeout) or the sweeper
# re-dispatches its deal, and tasks/stall_guard.py reconnects a consumer the lost ack stalled.
RECOVERABLE = "Couldn't ack"


class Stack:
    """A private Redis (AOF, appendfsync always), gunicorn, one Celery worker and beat, with the
    stress reference data loaded; the sweeper runs every 0.5 s and re-dispatches after 2 s."""

    def __init__(
        self,
        workdir: Path,
        sizes: Sizes,
        loglevel: str = "WARNING",
        env: dict[str, str] | None = None,
    ):
        self.workdir = workdir
        self.sizes = sizes
        self.loglevel = loglevel
        self.extra_env = env or {}
        self.server = RedisServer(workdir / "redis", appendonly=True)
        self.procs = Processes({}, workdir)
        self.env: dict[str, str] = {}
        self.base = ""
        self.redis: redis.Redis | None = None
        self._next_invoice = 0
        self._next_tight = 0
        self._log_start: dict[str, int] = {}
        self._log_read: dict[str, tuple[int, list[str]]] = {}

    def start(self) -> Stack:
        self.server.start()
        self.env = {
            "REDIS_URL": self.server.url,
            "XINBAO_STALE_AFTER_SECONDS": "2",
            "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
            "XINBAO_STALL_CHECK_SECONDS": "1",
            "LOG_LEVEL": self.loglevel,
            **self.extra_env,
        }
        self.procs = Processes(self.env, self.workdir)
        self.redis = redis.Redis.from_url(self.server.url, decode_responses=True)
        reference = ds.write_reference(
            self.workdir / "reference.json", self.sizes.invoices, self.sizes.tight
        )
        from web.cli import load_file

        load_file(reference, self.redis)
        self.base = f"http://127.0.0.1:{free_port()}"
        for name in ("web", "worker", "beat"):
            self.launch(name)
        wait_until(lambda: web_answers(self.base), 60, what="gunicorn")
        return self

    def stop(self) -> None:
        self.procs.stop_all()
        self.server.stop()

    @property
    def r(self) -> redis.Redis:
        assert self.redis is not None, "the stack is not started"
        return self.redis

    def take(self, count: int) -> list[int]:
        """Indexes of ``count`` declared invoices no earlier scenario has used."""
        first = self._next_invoice
        self._next_invoice += count
        if self._next_invoice > self.sizes.invoices:
            raise RuntimeError("the reference data declares too few invoices for this run")
        return list(range(first, first + count))

    def take_tight(self, count: int) -> list[str]:
        first = self._next_tight
        self._next_tight += count
        if self._next_tight > self.sizes.tight:
            raise RuntimeError("the reference data declares too few TIGHT invoices")
        return [f"TIGHT-{i:06d}" for i in range(first, first + count)]

    def kill_worker(self) -> None:
        self.procs.stop("worker", signal.SIGKILL)  # the whole process group

    def launch(self, name: str) -> None:
        """Start gunicorn ("web"), the worker or beat, remembering where its log starts."""
        log = self.workdir / f"{name}.log"
        self._log_start[name] = log.stat().st_size if log.exists() else 0
        self._log_read.pop(name, None)
        if name == "web":
            self.procs.web(int(self.base.rsplit(":", 1)[1]))
        elif name == "worker":
            self.procs.worker(loglevel=self.loglevel)
        else:
            self.procs.beat(loglevel=self.loglevel)

    def start_worker(self) -> None:
        self.launch("worker")

    def heal(self, tally: Tally) -> None:
        """After a scenario: every process must still run; report any that died or hung after
        an unrecoverable error, and start it again for the next scenario."""
        if self.server.process is None or self.server.process.poll() is not None:
            tally.problem("redis-server was not running after the scenario")
            self.server.start()
        for name in ("web", "worker", "beat"):
            state = self.condition(name)
            if state:
                tally.problem(
                    f"{name} {state} after the scenario; it said: {self.last_words(name)}"
                )
                if name in self.procs.running:
                    self.procs.stop(name, signal.SIGKILL)
                self.launch(name)

    def condition(self, name: str) -> str | None:
        """None while the process runs; else "died", or "hung" (alive, after logging an
        unrecoverable error: Celery 5.7's worker can stay in warm shutdown for ever)."""
        if not self.procs.alive(name):
            return "died"
        if self._critical(name):
            return "hung"
        return None

    def dead(self) -> list[str]:
        """The processes of the stack that should run and do not (or hang)."""
        dead = [n for n in ("web", "worker", "beat") if self.condition(n)]
        if self.server.process is None or self.server.process.poll() is not None:
            dead.append("redis-server")
        return dead

    def _critical(self, name: str) -> list[str]:
        """The CRITICAL lines a process logged since it was started (read incrementally)."""
        path = self.workdir / f"{name}.log"
        start = self._log_start.get(name, 0)
        read, found = self._log_read.get(name, (start, []))
        if path.exists():
            with path.open("rb") as log:
                log.seek(read)
                chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
            found = found + [
                line
                for line in complete.decode(errors="replace").splitlines()
                if ('"CRITICAL"' in line or "Unrecoverable error" in line)
                and RECOVERABLE not in line
            ]
            self._log_read[name] = (read + len(complete), found)
        return found

    def last_words(self, name: str) -> str:
        """Why a process stopped working, from its log since it started: its last CRITICAL
        record and the line that raised it."""
        lines = self._critical(name)
        if not lines:
            return "no CRITICAL record in its log"
        try:
            record = json.loads(lines[-1])
        except ValueError:
            return lines[-1].strip()[:300]
        frames = [
            f.strip()
            for f in str(record.get("exc", "")).splitlines()
            if f.strip().startswith("File ")
        ]
        return f"{record.get('msg', '')[:300]} [{frames[-1] if frames else ''}]"

    def logs(self) -> str:
        return self.procs.logs()


# --- the HTTP client --------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None
    body: Any
    attempts: int = 1
    replayed: bool = False

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


class Client:
    """A thread-safe API client that retries connection errors and 502/503/504 (with the same
    Idempotency-Key) until ``give_up_after`` seconds, counting what it had to retry."""

    def __init__(self, base: str, give_up_after: float = 90.0):
        self.base = base
        self.give_up_after = give_up_after
        self.retried: Counter[str] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _count(self, what: str) -> None:
        with self._lock:
            self.retried[what] += 1

    def call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        body: Any = None,
        key: str | None = None,
        retry: bool = True,
    ) -> Outcome:
        headers = ds.auth(token)
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.give_up_after
        delay, attempts, last = 0.05, 0, None
        while True:
            attempts += 1
            try:
                response = self._session().request(
                    method, f"{self.base}{path}", json=body, headers=headers, timeout=(3, 30)
                )
            except requests.RequestException as exc:
                self._count(type(exc).__name__)
                last = None
            else:
                if not retry or response.status_code not in RETRYABLE:
                    return Outcome(
                        response.status_code,
                        _json(response),
                        attempts,
                        response.headers.get("Idempotent-Replayed") == "true",
                    )
                self._count(f"HTTP {response.status_code}")
                last = response.status_code
            if not retry or time.monotonic() > deadline:
                return Outcome(last, None, attempts)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def submit(self, body: dict, key: str | None) -> Outcome:
        return self.call("POST", "/api/v1/deals", ds.EXPORTER_TOKEN, body=body, key=key)

    def retried_note(self) -> str:
        if not self.retried:
            return "client retries: none"
        return "client retries: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.retried.items()))


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


def submit_all(
    client: Client,
    items: list[tuple[str | None, dict]],
    threads: int = CLIENT_THREADS,
    on_accept: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """POST every (Idempotency-Key, body) from ``threads`` threads; results in input order."""

    def one(item: tuple[str | None, dict]) -> Outcome:
        key, body = item
        outcome = client.submit(body, key)
        if outcome.status == 202 and on_accept is not None:
            on_accept(outcome.body["id"])
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(items)))) as pool:
        return list(pool.map(one, items))


def count_outcomes(tally: Tally, outcomes: list[Outcome], expected: Iterable[tuple]) -> list[str]:
    """Count submitted/accepted; report every status that is not expected; return accepted ids.

    ``expected`` holds (status, error code or None) pairs besides 202.
    """
    allowed = set(expected)
    tally.submitted += len(outcomes)
    ids = []
    unexpected: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status == 202:
            ids.append(outcome.body["id"])
        elif (outcome.status, outcome.code) not in allowed:
            unexpected[f"{outcome.status} {outcome.code or outcome.body!r:.120}"] += 1
    tally.accepted += len(ids)
    for what, n in unexpected.items():
        tally.problem(f"{n} submission(s) answered {what}")
    replays = sum(o.replayed for o in outcomes)
    retried = sum(o.attempts > 1 for o in outcomes)
    tally.notes.append(
        f"{len(ids)} accepted of {len(outcomes)}; {retried} needed a retry, "
        f"{replays} answered by an idempotent replay"
    )
    return ids


# --- reading the store ------------------------------------------------------------------------


def chunks(items: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def states_of(r: redis.Redis, ids: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for part in chunks(ids, 1000):
        pipe = r.pipeline(transaction=False)
        for deal_id in part:
            pipe.hget(keys.deal(deal_id), "state")
        out.update(zip(part, pipe.execute(), strict=True))
    return out


def await_settled(
    r: redis.Redis,
    ids: list[str],
    settled: frozenset[str],
    timeout: float,
    give_up: Callable[[], Any] | None = None,
) -> float:
    """Wait (with a deadline, polling) until every deal's state is in ``settled``, or until
    ``give_up()`` is true for 5 s (a process that must move them has died); seconds waited."""
    started = time.monotonic()
    remaining = list(ids)
    hopeless_since = None
    while remaining and time.monotonic() - started < timeout:
        if give_up is not None and give_up():
            hopeless_since = hopeless_since or time.monotonic()
            if time.monotonic() - hopeless_since > 5:
                break
        try:
            states = states_of(r, remaining)
        except redis.ConnectionError:
            states = {}
        remaining = [i for i in remaining if states.get(i) not in settled]
        if remaining:
            time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class DealRecord:
    id: str
    fields: dict[str, str]
    events: list[dict]
    indexed: dict[str, bool]  # index name -> whether the deal is in it


def read_deals(r: redis.Redis, ids: list[str]) -> Iterator[DealRecord | str]:
    """Every deal with its events and index memberships; a missing deal yields its id."""
    index_names = [keys.by_state(s) for s in NON_TERMINAL] + [keys.deadlines()]
    for part in chunks(ids, 300):
        pipe = r.pipeline(transaction=False)
        for deal_id in part:
            pipe.hgetall(keys.deal(deal_id))
            pipe.lrange(keys.events(deal_id), 0, -1)
            for name in index_names:
                pipe.zscore(name, deal_id)
        answers = pipe.execute()
        width = 2 + len(index_names)
        for n, deal_id in enumerate(part):
            fields, raw_events, *scores = answers[n * width : (n + 1) * width]
            if not fields:
                yield deal_id
                continue
            indexed = {
                name: score is not None for name, score in zip(index_names, scores, strict=True)
            }
            bank_id = fields.get("bank_id")
            if bank_id:
                indexed[keys.bank_queue(bank_id)] = (
                    r.zscore(keys.bank_queue(bank_id), deal_id) is not None
                )
            yield DealRecord(deal_id, fields, [json.loads(e) for e in raw_events], indexed)


Expectation = Callable[[DealRecord], str | None]


def audit(
    r: redis.Redis,
    ids: list[str],
    tally: Tally,
    expect: Expectation,
    once: tuple[str, ...] = ONCE,
) -> dict[str, str]:
    """Check every accepted deal: it exists (else lost); it left the worker-owned states and
    sits in the indexes that give its next step an owner (else stranded); its event log has
    each version once and each ``once`` event once, and no bank twice (else duplicated); the
    log rebuilds the hash exactly and chains from state to state; and ``expect`` (the state its
    data implies) holds. Returns each deal's final state."""
    finals: dict[str, str] = {}
    for record in read_deals(r, ids):
        if isinstance(record, str):
            tally.bump("lost", example=f"deal {record} was accepted (202) and is gone")
            continue
        deal_id, fields, events = record.id, record.fields, record.events
        state = fields.get("state", "?")
        finals[deal_id] = state
        versions = [e.get("v") for e in events]
        types = Counter(e.get("type") for e in events)
        offered = json.loads(fields.get("offered_banks") or "[]")
        doubled = [t for t in once if types[t] > 1]
        if (
            versions != list(range(1, len(events) + 1))
            or doubled
            or len(offered) != len(set(offered))
        ):
            tally.bump(
                "duplicated",
                example=f"deal {deal_id}: versions {versions}, events "
                f"{[e.get('type') for e in events]}, offered to {offered}",
            )
            continue
        if state in WORKING:
            tally.bump(
                "stranded",
                example=f"deal {deal_id} still {state} "
                f"after the deadline (events {[e.get('type') for e in events]})",
            )
            continue
        owner = _owner_problem(record, state)
        if owner:
            tally.bump("stranded", example=f"deal {deal_id} ({state}): {owner}")
            continue
        if rebuild(events) != fields:
            diff = {
                k
                for k in set(fields) | set(rebuild(events))
                if fields.get(k) != rebuild(events).get(k)
            }
            tally.problem(
                f"deal {deal_id}: its event log does not rebuild its hash "
                f"(fields differing: {sorted(diff)})"
            )
        chain = [None] + [e.get("to") for e in events]
        if [e.get("from") for e in events] != chain[:-1] or chain[-1] != state:
            tally.problem(f"deal {deal_id}: events do not chain from state to state")
        wrong = expect(record)
        if wrong:
            tally.problem(f"deal {deal_id}: {wrong}")
    return finals


def _owner_problem(record: DealRecord, state: str) -> str | None:
    """Whether the indexes that route a deal's next step to its owner hold it, and no other."""
    for s in NON_TERMINAL:
        if record.indexed[keys.by_state(s)] != (s == state):
            where = "missing from" if s == state else "left behind in"
            return f"{where} the {s} index"
    pending = state == str(State.PENDING_BANK)
    if record.indexed[keys.deadlines()] != pending:
        where = "missing from" if pending else "left behind in"
        return f"{where} the bank-deadline schedule"
    bank_id = record.fields.get("bank_id")
    if pending and not (bank_id and record.indexed.get(keys.bank_queue(bank_id))):
        return f"missing from the queue of its bank {bank_id}"
    return None


def types_of(record: DealRecord) -> list[str]:
    return [e.get("type") for e in record.events]
