"""``make chaos``, the insurer scenario, on a stack of its own: gunicorn and the worker use the
HTTP insurer adapter (XINBAO_INSURER=http) against ``xinbao insurer-sim`` as a real process,
whose faults cycle while deals are submitted through the API and banks file notices and claims:
answers just inside the 1 s timeout, a share of 503s, dropped connections, tokens that expire,
and every callback sent twice and late. Then the faults are cleared: every deal must end as its
data implies (declared: offered once to the cheapest bank; undeclared: rejected), every claim
decided once, and no callback refused; nothing lost, stranded or duplicated.

How the claims get there: as in ``chaos_sweeps``, advances past due are made in this process
with the workflow's own steps on a clock set back (here through the HTTP adapter too, before
the faults start, while the worker is stopped); the real worker's arrears sweep finds them.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tests.stress import chaos_sweeps as sweeps
from tests.stress import dataset as ds
from tests.stress.chaos_stack import (
    BANK,
    ONCE_DESPITE_HOLDS,
    WORKING,
    Client,
    DealRecord,
    Sizes,
    Stack,
    Tally,
    audit,
    await_settled,
    count_outcomes,
    scenario,
    submit_all,
    types_of,
)
from tests.support import InsurerSim, wait_until
from workflow import keys
from workflow.reasons import Reason
from workflow.settings import SIM_API_KEY
from workflow.states import State

SECRET = "chaos-insurer-callback-secret"
TIMEOUT_S = 1.0
# The faults in turn, each for its seconds, for as long as deals are being submitted and
# claimed (each phase's changes apply over the last one's); callbacks are always doubled and late.
# The first outage lasts until deals are held instead (a failed verification waits behind the
# queue of deals ahead of it, so a fixed few seconds may end before any retry fails).
PHASES: tuple[tuple[float, dict[str, Any]], ...] = (
    (4.0, {"error_rate": 1.0}),  # an outage: every call answered 503
    (1.5, {"error_rate": 0.0, "latency_ms": int(TIMEOUT_S * 1000 * 0.9)}),  # near the timeout
    (1.5, {"latency_ms": 0, "error_rate": 0.3}),
    (1.5, {"error_rate": 0.0, "drop_rate": 0.3}),
    (1.5, {"drop_rate": 0.0, "token_ttl_s": 1, "expire_tokens": True}),
    (1.5, {"latency_ms": 150, "error_rate": 0.1, "drop_rate": 0.05, "token_ttl_s": 2}),
)
ALWAYS = {"duplicate_callbacks": True, "late_callbacks_ms": 1500}
CLEAR = {
    "latency_ms": 0,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "token_ttl_s": None,
    "duplicate_callbacks": False,
    "late_callbacks_ms": 0,
}
UNDECLARED_EVERY = 10  # every tenth deal's invoice was never declared to the insurer
CLAIM = sweeps.Group("claim", 6, ("overdue",), State.OVERDUE)  # due 6 days ago, no grace
CLAIMED = [*sweeps.UP_TO_APPROVAL, "disbursed", "overdue", "notice_filed", "claim_filed"]
DECIDED = frozenset({str(State.INDEMNIFIED), str(State.CLAIM_REJECTED)})
SETTLED = (frozenset(str(s) for s in State) - WORKING) - {str(State.OVERDUE)}


def env_for(sim: InsurerSim) -> dict[str, str]:
    """The stack's settings: the HTTP adapter with short calls, a quick breaker, short holds."""
    return {
        "XINBAO_INSURER": "http",
        "XINBAO_INSURER_URL": sim.url,
        "XINBAO_INSURER_API_KEY": SIM_API_KEY,
        "XINBAO_INSURER_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "XINBAO_INSURER_JOB_WAIT_SECONDS": "5",
        "XINBAO_INSURER_BREAKER_RESET_SECONDS": "1",
        # A verification the adapter's own retries could not finish holds the deal at once
        # (tests/tasks covers the task's retries before the hold).
        "XINBAO_INSURER_RETRY_LIMIT": "0",
        "XINBAO_HOLD_RETRY_SECONDS": "2",
        "XINBAO_INSURER_CALLBACK_SECRET": SECRET,
    }


def write_book(stack: Stack, claims: int) -> Path:
    """The insurer's book and Xinbao's reference data alike: the stress data plus the
    declarations of the claimed advances' invoices."""
    book = ds.reference(stack.sizes.invoices, stack.sizes.tight)
    today = datetime.now(UTC).date()
    book["declarations"] += sweeps.declarations([CLAIM] * claims, today)
    path = stack.workdir / "insurer-book.json"
    path.write_text(json.dumps(book))
    return path


@contextmanager
def insurer_stack(workdir: Path, sizes: Sizes, loglevel: str = "WARNING") -> Iterator[tuple]:
    """A chaos Stack whose web and worker use the HTTP adapter, and the simulator it calls
    (its callbacks signed to the stack's webhook); both stopped however the block ends."""
    sim = InsurerSim(workdir / "sim")
    stack = Stack(workdir, sizes, loglevel=loglevel, env=env_for(sim))
    try:
        stack.start()
        book = write_book(stack, sizes.insurer_claims)
        from web.cli import load_file

        load_file(book, stack.r)
        sim.args = [
            "--data",
            str(book),
            "--callback-url",
            f"{stack.base}/api/v1/insurer/callbacks",
            "--callback-secret",
            SECRET,
            "--claim-review",
            "1",
        ]
        sim.start()
        yield stack, sim
    finally:
        sim.stop()
        stack.stop()


class FaultCycler:
    """Turns the simulator's faults through PHASES until stopped, then clears them; the first
    outage lasts until ``held`` deals are on hold (at most a minute)."""

    def __init__(self, sim: InsurerSim, stack: Stack, tally: Tally, held: int):
        self.sim, self.stack, self.tally, self.held = sim, stack, tally, held
        self.stop = threading.Event()
        self.turns = 0
        self.thread = threading.Thread(target=self._run, name="fault-cycler", daemon=True)

    def _set(self, phase: dict[str, Any]) -> bool:
        """Set the phase's faults; a control call the busy simulator did not answer in time is
        sent again (it only sets values), and counted in the notes; the third failure is a
        problem of the run."""
        for attempt in range(3):
            try:
                self.sim.faults(timeout=10, **ALWAYS, **phase)
                return True
            except requests.RequestException as exc:
                if attempt == 2:
                    self.tally.problem(f"setting the simulator's faults failed: {exc!r}")
                    return False
                self.tally.notes.append(f"setting the simulator's faults: {exc!r}, sent again")
        return False

    def _run(self) -> None:
        while not self.stop.is_set():
            seconds, phase = PHASES[self.turns % len(PHASES)]
            if not self._set(phase):
                return
            self.turns += 1
            if self.turns == 1:
                on_hold = keys.by_state(State.ON_HOLD)
                deadline = time.monotonic() + 60
                while self.stack.r.zcard(on_hold) < self.held and time.monotonic() < deadline:
                    self.stop.wait(0.1)
                continue
            self.stop.wait(seconds)

    def __enter__(self) -> FaultCycler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.sim.faults(**CLEAR)


def make_claims(stack: Stack, count: int) -> list[sweeps.Made]:
    """``count`` advances past due, made with the worker stopped; overdue once it is back."""
    today = datetime.now(UTC).date()
    stack.procs.stop("worker")
    try:
        made = [sweeps.make_deal(stack, n, CLAIM, today) for n in range(count)]
    finally:
        stack.start_worker()
    wait_until(
        lambda: all(stack.r.hget(keys.deal(m.id), "state") == State.OVERDUE for m in made),
        60,
        interval=0.2,
        what="the claimed advances to go overdue",
    )
    return made


def claim_each(client: Client, made: list[sweeps.Made], tally: Tally) -> None:
    """The bank files the notice (the web asks the insurer: 503 while it cannot; the client
    retries) and then the claim of each overdue advance."""
    token = ds.BANK_TOKENS[BANK]
    for m in made:
        notice = client.call("POST", f"/api/v1/deals/{m.id}/notice", token, body={})
        if notice.status != 200:
            tally.problem(f"notice on {m.id} answered {notice.status} {notice.body!r:.200}")
            continue
        claim = client.call(
            "POST",
            f"/api/v1/deals/{m.id}/claim",
            token,
            body={"loss_amount": str(m.principal), "documents": ["invoice", "bill of lading"]},
        )
        if claim.status not in (200, 202):
            tally.problem(f"claim on {m.id} answered {claim.status} {claim.body!r:.200}")


def expect(undeclared: set[str], claimed: set[str], holds: dict[str, int]) -> Any:
    """Declared deals are offered once to the cheapest bank; undeclared ones rejected
    SHIPMENT_NOT_DECLARED; claimed advances decided once. Holds aside (counted into
    ``holds``), the log is as usual."""

    def check(record: DealRecord) -> str | None:
        types = types_of(record)
        holds[record.id] = types.count("on_hold")
        if types.count("verification_started") != types.count("on_hold") + 1:
            return f"events {types}: each hold must be followed by one verification"
        unheld = [
            t
            for n, t in enumerate(types)
            if t != "on_hold" and not (t == "verification_started" and t in types[:n])
        ]
        state = record.fields.get("state")
        if record.id in claimed:
            if state not in DECIDED or unheld != [*CLAIMED, state]:
                return f"claimed advance ended {state} with events {types}"
            return None
        if record.id in undeclared:
            reasons = json.loads(record.fields.get("reasons") or "[]")
            if state != State.REJECTED or reasons != [str(Reason.SHIPMENT_NOT_DECLARED)]:
                return f"undeclared invoice ended {state} {reasons}"
            return None
        offered = json.loads(record.fields.get("offered_banks") or "[]")
        if state != State.PENDING_BANK or offered != [BANK]:
            return f"ended {state} offered to {offered}; expected pending_bank at {BANK}"
        if unheld != ["submitted", "verification_started", "verified", "offered_to_bank"]:
            return f"events {types}"
        return None

    return check


def callbacks_settled(sim: InsurerSim) -> dict[str, int]:
    """The simulator's counts once no callback is still on its way (none sent for 2 s)."""
    last: list[Any] = [None, time.monotonic()]

    def quiet() -> dict[str, int] | None:
        stats = sim.stats()
        if stats.get("callbacks_sent") != last[0]:
            last[:] = [stats.get("callbacks_sent"), time.monotonic()]
            return None
        return stats if time.monotonic() - last[1] > 2 else None

    return wait_until(quiet, 60, interval=0.2, what="the simulator's callbacks")


@scenario("insurer faults")
def insurer_faults(stack: Stack, sizes: Sizes, tally: Tally, sim: InsurerSim) -> None:
    """``sizes.insurer_deals`` deals through the API and ``sizes.insurer_claims`` notices and
    claims while the insurer misbehaves (PHASES), then the faults cleared: every deal ends as
    its data implies, each hold resumed, each claim decided once, every callback taken."""
    r = stack.r
    made = make_claims(stack, sizes.insurer_claims)
    client = Client(stack.base, give_up_after=120)
    indexes = stack.take(sizes.insurer_deals)
    undeclared_numbers = {
        i: f"ST-NODECL-{i:06d}" for n, i in enumerate(indexes) if n % UNDECLARED_EVERY == 0
    }
    items = [
        (f"chaos-insurer-{i}", ds.deal_body(i, number=undeclared_numbers.get(i))) for i in indexes
    ]
    started = time.monotonic()
    with FaultCycler(sim, stack, tally, held=max(1, sizes.insurer_deals // 20)) as cycler:
        claimer = threading.Thread(target=claim_each, args=(client, made, tally), daemon=True)
        claimer.start()
        outcomes = submit_all(client, items)
        claimer.join(300)
        ids = count_outcomes(tally, outcomes, expected=())
        # Faults stay on until every deal has met them (each is decided or on hold) and every
        # fault has had its turn.
        await_settled(r, ids, SETTLED | {str(State.ON_HOLD)}, sizes.settle_seconds, stack.dead)
        wait_until(lambda: cycler.turns >= len(PHASES), 60, what="one turn of every fault")
    faulty = time.monotonic() - started
    faults = sim.stats()
    claimed = [m.id for m in made]
    waited = await_settled(r, ids + claimed, SETTLED, sizes.settle_seconds, stack.dead)
    undeclared = {
        o.body["id"]
        for o, (_, body) in zip(outcomes, items, strict=True)
        if o.status == 202 and body["invoices"][0]["number"].startswith("ST-NODECL-")
    }
    once = (*ONCE_DESPITE_HOLDS, "notice_filed", "claim_filed", "indemnified", "claim_rejected")
    holds: dict[str, int] = {}
    check = expect(undeclared, set(claimed), holds)
    finals = audit(r, ids + claimed, tally, check, once=once)
    stats = callbacks_settled(sim)
    if stats.get("callbacks_sent") != stats.get("callbacks_delivered"):
        tally.problem(
            f"the simulator sent {stats.get('callbacks_sent')} callbacks and "
            f"{stats.get('callbacks_delivered')} were taken: Xinbao refused or failed some"
        )
    taken = sum(1 for _ in r.scan_iter(keys.insurer_callback("*", "*"), count=1000))
    ended: dict[str, int] = {}
    for state in finals.values():
        ended[state] = ended.get(state, 0) + 1
    tally.notes.append(
        f"faults for {faulty:.1f}s ({cycler.turns} phases): "
        + ", ".join(f"{k} {faults.get(k, 0)}" for k in ("requests", "errors", "dropped"))
        + f", {faults.get('unauthorized', 0)} expired-token 401s, "
        f"{faults.get('logins', 0)} logins; {sum(holds.values())} holds of "
        f"{sum(n > 0 for n in holds.values())} deals"
    )
    tally.notes.append(
        f"ended: {', '.join(f'{s} {n}' for s, n in sorted(ended.items()))}; "
        f"settled {waited:.1f}s after the faults were cleared"
    )
    tally.notes.append(
        f"callbacks: {stats.get('callbacks_sent')} sent (doubled and late while faulty), "
        f"{stats.get('callbacks_delivered')} answered 200, {taken} distinct taken"
    )
    tally.notes.append(client.retried_note())
    if not any(s == State.PENDING_BANK for s in finals.values()):
        tally.problem("no deal was offered: the scenario proved nothing")
    if not any(holds.values()):
        tally.problem("no deal was held: the outage came too late to prove anything")


def run_on_own_stack(workdir: Path, sizes: Sizes, loglevel: str = "WARNING") -> Tally:
    """``make chaos``'s way in: the scenario on its own stack, summarised as it ends (with the
    processes' logs when it fails)."""
    tally = Tally("insurer faults")
    try:
        with insurer_stack(workdir, sizes, loglevel) as (stack, sim):
            tally = insurer_faults(stack, sizes, sim=sim)
            stack.heal(tally)
            if tally.failed:
                print(stack.logs()[-12000:], flush=True)
    except Exception:  # noqa: BLE001 - the stack did not start: reported, and the run fails
        tally.problem(f"the insurer stack failed: {traceback.format_exc()}")
    print(tally.summary(), flush=True)
    return tally
