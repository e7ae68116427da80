"""``make chaos``, the date-driven sweeps: the arrears sweep and the approval-lapse sweep run as
Celery tasks, several at once, while the worker is SIGKILLed mid-sweep; every advance past its
due date goes overdue exactly once, each insurer deadline is recorded once, the due-date
schedule holds what comes next, and the bank's portfolio counters equal the deals.

How the deals get there: no setting shifts a process's clock (the workflow's clock is only
injectable in Python), and an advance cannot be disbursed with a value date before its approval
or on its due date, so the real API cannot make an advance that is already past due. The deals
are made in this process through the workflow itself (submit, verify, approve, disburse: the
same steps the API and the worker call) with a clock set back to a day ~30 days before each
advance's due date, against the stack's Redis, while the worker is stopped (so nothing sweeps
them half-made). Then the real worker processes, on the real clock, find them past due.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import redis

from tests.stress import dataset as ds
from tests.stress.chaos_stack import (
    BANK,
    DealRecord,
    Sizes,
    Stack,
    Tally,
    audit,
    chunks,
    scenario,
    types_of,
)
from tests.support import wait_until
from workflow import keys
from workflow.business_days import due_score
from workflow.deal import utcnow
from workflow.money import to_cents
from workflow.pipeline import Decision, Disbursement, Workflow
from workflow.portfolio import OPEN, figures
from workflow.reference.records import exposure_of
from workflow.states import State
from workflow.steps import business_date
from workflow.store import epoch_seconds

GRACE = 2  # the policy's grace days, loaded for this scenario
NOTICE_DAYS, CLAIM_DAYS = 60, 120  # the policy's defaults
LAPSE_DAYS = 30  # XINBAO_APPROVAL_LAPSE_DAYS's default; the stress banks set none
ADVANCE_DAYS = 30  # each advance is paid out this many days before its due date
UP_TO_APPROVAL = ["submitted", "verification_started", "verified", "offered_to_bank", "approved"]
SWEEPS_AT_ONCE = 4  # arrears sweeps published together (the worker runs two at a time)


@dataclass(frozen=True)
class Group:
    """Deals made alike: due (or approved) ``days_ago`` business days before today; what the
    sweeps must leave of them."""

    name: str
    days_ago: int
    events: tuple[str, ...]  # after "disbursed" (or "approved" for an approval never paid out)
    state: State
    disbursed: bool = True

    @property
    def missed(self) -> list[str]:
        return [e.split("_")[0] for e in self.events if e.endswith("_deadline_missed")]


# Due 3 days ago with 2 days' grace: late since midnight in Shanghai, overdue only.
GRACE_OVER = Group("grace over", 3, ("overdue",), State.OVERDUE)
# Due 62 days ago: overdue, and the notice of possible loss (due + 60) is 2 days late.
NOTICE_MISSED = Group("notice missed", 62, ("overdue", "notice_deadline_missed"), State.OVERDUE)
# Due 125 days ago: overdue, notice missed, claim (due + 120) missed: nothing left to watch.
CLAIM_MISSED = Group(
    "claim missed",
    125,
    ("overdue", "notice_deadline_missed", "claim_deadline_missed"),
    State.OVERDUE,
)
# Due yesterday, still within its grace: the sweeps must leave it alone.
IN_GRACE = Group("in grace", 1, (), State.DISBURSED)
# Approved 35 days ago, never disbursed: lapsed 5 days ago.
LAPSED = Group("lapsed", 35, ("approval_lapsed",), State.CANCELLED, disbursed=False)
# Approved 10 days ago: 20 days left to disburse it.
FRESH = Group("fresh approval", 10, (), State.APPROVED, disbursed=False)


def plan(sizes: Sizes) -> list[Group]:
    """The group of each deal, in order: the due advances 60/25/15 %, then a tenth as many
    within their grace, then the approvals (a quarter as many again that must not lapse)."""
    due = sizes.sweep_due
    notice, claim = due // 4, due * 15 // 100
    return (
        [GRACE_OVER] * (due - notice - claim)
        + [NOTICE_MISSED] * notice
        + [CLAIM_MISSED] * claim
        + [IN_GRACE] * max(1, due // 10)
        + [LAPSED] * sizes.lapses
        + [FRESH] * max(1, sizes.lapses // 4)
    )


@dataclass(frozen=True)
class Made:
    """One deal the scenario made, with the dates its expectations follow from."""

    id: str
    group: Group
    due: date
    approved_at: datetime
    principal: Decimal
    exposure: str


class Frozen:
    """A workflow clock stopped at one moment (each deal is made at its own)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def moment(day: date) -> datetime:
    """10:00 in Shanghai on ``day``: the middle of a business day, whatever the UTC date."""
    return datetime.combine(day, clock_time(2, 0), UTC)


def dates_of(group: Group, today: date) -> tuple[date, date]:
    """(the day the deal is approved and paid out, the invoice's due date)."""
    if group.disbursed:
        due = today - timedelta(days=group.days_ago)
        return due - timedelta(days=ADVANCE_DAYS), due
    approved = today - timedelta(days=group.days_ago)
    return approved, approved + timedelta(days=60)


def number(n: int) -> str:
    return f"SW-{n:07d}"


def declarations(groups: list[Group], today: date) -> list[dict[str, Any]]:
    """The insurer's declarations of the scenario's invoices, shipped 14 days before each deal."""
    out = []
    for n, group in enumerate(groups):
        day, _ = dates_of(group, today)
        out.append(
            {
                "policy_no": ds.POLICY,
                "buyer_code": ds.buyer_of(n),
                "invoice_number": number(n),
                "shipment_date": (day - timedelta(days=14)).isoformat(),
                "declared_on": (day - timedelta(days=13)).isoformat(),
            }
        )
    return out


def load_terms(stack: Stack, groups: list[Group], today: date) -> None:
    """Reload the policy with GRACE days' grace and the declarations with the scenario's, as
    the insurer's reference data would be updated (each section replaced whole)."""
    from web.cli import load_file

    base = ds.reference(stack.sizes.invoices, stack.sizes.tight)
    policy = {**base["policies"][0], "grace_days": GRACE}
    path = stack.workdir / "sweep-reference.json"
    path.write_text(
        json.dumps(
            {
                "policies": [policy],
                "declarations": base["declarations"] + declarations(groups, today),
            }
        )
    )
    load_file(path, stack.r)


def body(n: int, day: date, due: date) -> dict[str, Any]:
    """The application for invoice ``n``, shipped 14 days before ``day`` and due on ``due``;
    amounts differ per deal so the portfolio's sums mean something."""
    amount = f"{1000 + (n * 7919) % 90000}.{n % 100:02d}"
    return {
        **ds.deal_body(n, amount=amount, number=number(n)),
        "invoices": [
            {
                "number": number(n),
                "amount": amount,
                "currency": "USD",
                "issue_date": (day - timedelta(days=23)).isoformat(),
                "shipment_date": (day - timedelta(days=14)).isoformat(),
                "due_date": due.isoformat(),
            }
        ],
    }


def make_deal(stack: Stack, n: int, group: Group, today: date) -> Made:
    """Submit, verify, approve and (unless the group is of approvals) disburse deal ``n`` with
    the workflow's own steps, on a clock set to the day it was approved and paid out."""
    from web import build_workflow
    from web.schemas import DealRequestSchema
    from workflow.settings import load_settings

    day, due = dates_of(group, today)
    clock = Frozen(moment(day))
    flow: Workflow = build_workflow(stack.r, load_settings(stack.env))
    flow.clock = clock
    application = DealRequestSchema().load(body(n, day, due))
    deal_id = flow.submit(application, f"chaos-sweep-{n}").deal.id
    deal = flow.verify(deal_id)
    if deal is None or deal.state != State.PENDING_BANK or deal.bank_id != BANK:
        raise AssertionError(f"deal {n} ({group.name}) was not offered to {BANK}: {deal!r:.300}")
    clock.now += timedelta(minutes=5)
    deal = flow.decide(deal_id, BANK, Decision(approve=True, officer="chaos"))
    approved_at = clock.now
    principal = Decimal(deal.fields["approved_amount"])
    if group.disbursed:
        clock.now += timedelta(minutes=5)
        payout = Disbursement("chaos", principal, day, f"CHAOS-PAY-{n}")
        deal = flow.disburse(deal_id, BANK, payout)
    return Made(deal_id, group, due, approved_at, principal, deal.fields["exposure"])


def sender(stack: Stack) -> Any:
    """A Celery app publishing to the stack's broker with the project's own settings."""
    from celery import Celery

    from tasks.celery_app import celery_config
    from workflow.settings import load_settings

    app = Celery("chaos-sweeps")
    app.config_from_object(celery_config(load_settings(stack.env)))
    return app


def publish_sweeps(app: Any) -> None:
    """As beat would, several at once: the arrears sweep SWEEPS_AT_ONCE times, the lapse
    sweep twice, interleaved."""
    for n in range(SWEEPS_AT_ONCE):
        app.send_task("xinbao.sweep_arrears")
        if n < 2:
            app.send_task("xinbao.lapse_approvals")


def due_now(r: redis.Redis) -> int:
    """Schedule entries (due dates, approval lapses) whose time has come."""
    now = epoch_seconds(utcnow())
    return r.zcount(keys.due_dates(), "-inf", now) + r.zcount(keys.approval_lapses(), "-inf", now)


@scenario("due-date sweeps under worker kills")
def sweeps_under_kills(stack: Stack, sizes: Sizes, tally: Tally) -> None:
    """``sizes.sweep_due`` advances past their due date (and grace), a tenth as many still in
    grace, ``sizes.lapses`` approvals past their lapse time and a few that are not; the arrears
    and lapse sweeps are published several at once while the worker is SIGKILLed
    ``sizes.sweep_kills`` times mid-sweep. Every due advance ends overdue once, with each
    missed insurer deadline recorded once; the schedule holds each deal's next event; lapsed
    approvals are cancelled once with their reservation and invoice released; and the bank's
    portfolio counters equal a recomputation from its deals."""
    r = stack.r
    groups = plan(sizes)
    today = business_date(utcnow())
    stack.kill_worker()  # nothing sweeps a deal half-made
    load_terms(stack, groups, today)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda n: make_deal(stack, n, groups[n], today), range(len(groups))))
    tally.submitted = tally.accepted = len(made)
    tally.notes.append(
        f"made {len(made)} deals through the workflow's steps on clocks set back "
        f"(worker stopped) in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{g} x{n}" for g, n in Counter(m.group.name for m in made).items())
    )
    if due_now(r) != sizes.sweep_due + sizes.lapses:
        tally.problem(
            f"{due_now(r)} schedule entries due, expected {sizes.sweep_due + sizes.lapses}"
        )

    app = sender(stack)
    progress = lambda: r.zcard(keys.by_state(State.OVERDUE))  # noqa: E731 - only ours go overdue
    kills: list[str] = []
    started = time.monotonic()
    try:
        for k in range(sizes.sweep_kills):
            publish_sweeps(app)
            stack.start_worker()
            target = (k + 1) * sizes.sweep_due // (sizes.sweep_kills + 1)
            try:
                wait_until(
                    lambda t=target: progress() >= t,
                    60,
                    interval=0.002,
                    what=f"{target} advances overdue",
                )
            except AssertionError as exc:
                tally.problem(f"worker kill {k + 1}: {exc}")
                break
            done = progress()
            stack.kill_worker()
            kills.append(
                f"#{k + 1} at {done}/{sizes.sweep_due} overdue"
                + ("" if done < sizes.sweep_due else " (the sweep had finished)")
            )
            time.sleep(random.uniform(0.1, 0.5))  # the outage itself
        publish_sweeps(app)
        stack.start_worker()
        try:
            wait_until(
                lambda: due_now(r) == 0,
                sizes.settle_seconds,
                interval=0.1,
                what="every due schedule entry to be swept",
            )
        except AssertionError as exc:
            tally.problem(f"{exc}: {due_now(r)} still due")
        settled = time.monotonic() - started
        # More sweeps over the settled deals: a sweep that acted twice would show now.
        publish_sweeps(app)
        wait_until(lambda: r.llen("celery") == 0, 30, interval=0.05, what="the extra sweeps")
        time.sleep(1.0)  # the last two run (the worker takes two at a time), and beat's
    finally:
        app.close()
    tally.notes.append(f"SIGKILLed the worker {len(kills)}x: {'; '.join(kills)}")
    tally.notes.append(f"everything due was swept {settled:.1f}s after the first sweep")

    by_id = {m.id: m for m in made}
    finals = audit(r, list(by_id), tally, expect_swept(by_id, tally))
    tally.notes.append(
        "ended: " + ", ".join(f"{s} x{n}" for s, n in sorted(Counter(finals.values()).items()))
    )
    check_schedule(r, made, tally)
    check_reservations(r, made, tally)
    check_portfolio(r, tally)


def expect_swept(by_id: dict[str, Made], tally: Tally) -> Callable[[DealRecord], str | None]:
    """Each deal's state, events (each step exactly once, in order) and arrears fields as its
    group implies. A step done twice counts as duplicated, a step not done as stranded."""

    def check(record: DealRecord) -> str | None:
        made = by_id[record.id]
        group, f = made.group, record.fields
        expected = UP_TO_APPROVAL + (["disbursed"] if group.disbursed else []) + list(group.events)
        if types_of(record) != expected:
            seen, wanted = Counter(types_of(record)), Counter(expected)
            what = f"deal {record.id} ({group.name}): events {types_of(record)[5:]}"
            if seen - wanted:
                tally.bump("duplicated", example=f"{what}, done twice: {dict(seen - wanted)}")
            if wanted - seen:
                tally.bump("stranded", example=f"{what}, never done: {dict(wanted - seen)}")
            if not (seen - wanted or wanted - seen):
                return f"{group.name}: events {types_of(record)}, expected {expected}"
            return None
        if f.get("state") != group.state:
            return f"{group.name}: {f.get('state')}, expected {group.state}"
        if group.state == State.OVERDUE:
            wanted = {
                "overdue_since": (made.due + timedelta(days=1)).isoformat(),
                "notice_deadline": (made.due + timedelta(days=NOTICE_DAYS)).isoformat(),
                "claim_deadline": (made.due + timedelta(days=CLAIM_DAYS)).isoformat(),
            }
            got = {k: f.get(k) for k in wanted}
            if got != wanted:
                return f"{group.name}: arrears fields {got}, expected {wanted}"
            missed = json.loads(f.get("missed_deadlines") or "[]")
            if missed != group.missed:
                return f"{group.name}: missed_deadlines {missed}, expected {group.missed}"
        if group.state == State.CANCELLED and json.loads(f.get("reasons") or "[]") != [
            "APPROVAL_LAPSED"
        ]:
            return f"lapsed with reasons {f.get('reasons')}"
        return None

    return check


def next_event(made: Made) -> float | None:
    """The score the due-date schedule must hold for a deal now (None: not in it)."""
    group = made.group
    if group is GRACE_OVER:
        return due_score(made.due + timedelta(days=NOTICE_DAYS))
    if group is NOTICE_MISSED:
        return due_score(made.due + timedelta(days=CLAIM_DAYS))
    if group is IN_GRACE:
        return due_score(made.due + timedelta(days=GRACE))
    return None  # the claim deadline passed (nothing left to watch), or never disbursed


def check_schedule(r: redis.Redis, made: list[Made], tally: Tally) -> None:
    """The due-date and approval-lapse schedules: each deal in them once with its next event's
    time, or not at all; and nothing else in them."""
    wrong: Counter[str] = Counter()
    for part in chunks(made, 500):
        pipe = r.pipeline(transaction=False)
        for m in part:
            pipe.zscore(keys.due_dates(), m.id)
            pipe.zscore(keys.approval_lapses(), m.id)
        answers = pipe.execute()
        for n, m in enumerate(part):
            due, lapse = answers[2 * n], answers[2 * n + 1]
            want = next_event(m)
            if (due is None) != (want is None) or (due is not None and abs(due - want) > 0.001):
                wrong[m.group.name] += 1
                if wrong[m.group.name] <= 3:
                    tally.problem(
                        f"deal {m.id} ({m.group.name}): due-date score {due}, expected {want}"
                    )
            want_lapse = (
                epoch_seconds(m.approved_at + timedelta(days=LAPSE_DAYS))
                if m.group is FRESH
                else None
            )
            if (lapse is None) != (want_lapse is None) or (
                lapse is not None and abs(lapse - want_lapse) > 0.001
            ):
                tally.problem(
                    f"deal {m.id} ({m.group.name}): lapse score {lapse}, expected {want_lapse}"
                )
    scheduled = sum(next_event(m) is not None for m in made)
    fresh = sum(m.group is FRESH for m in made)
    # Other scenarios' approvals (the tight limit's) are in the lapse schedule too; only this
    # scenario disburses, so the due-date schedule is all ours.
    others = r.zcard(keys.approval_lapses()) - fresh
    if r.zcard(keys.due_dates()) != scheduled:
        tally.problem(
            f"the due-date schedule holds {r.zcard(keys.due_dates())} deals, expected {scheduled}"
        )
    tally.notes.append(
        f"due-date schedule: {scheduled} deals, each at its next event's time; approval "
        f"lapses: {fresh} of ours (and {others} other scenarios' approvals, not yet due)"
    )


def check_reservations(r: redis.Redis, made: list[Made], tally: Tally) -> None:
    """A lapsed approval released its limit reservation and invoice; every other deal holds
    both (a disbursed one its principal, an approval its invoice total)."""
    pipe = r.pipeline(transaction=False)
    for n, m in enumerate(made):
        pipe.hget(keys.exposure_reservations(m.exposure), m.id)
        pipe.get(keys.receivable(ds.EXPORTER, ds.buyer_of(n), number(n)))
    answers = pipe.execute()
    for n, m in enumerate(made):
        held, lock = answers[2 * n], answers[2 * n + 1]
        if m.group is LAPSED:
            if held is not None or lock is not None:
                tally.problem(f"lapsed {m.id} still holds reservation {held}, lock {lock}")
        elif lock != m.id or held is None:
            tally.problem(f"{m.group.name} {m.id}: reservation {held}, lock held by {lock}")
        elif m.group.disbursed and int(held) != to_cents(m.principal):
            tally.problem(f"{m.group.name} {m.id}: reserves {held} cents, principal {m.principal}")
    exposures = {exposure_of(ds.POLICY, ds.buyer_of(b), "USD") for b in range(ds.BUYERS)}
    for exposure in sorted(exposures):
        holds = r.hgetall(keys.exposure_reservations(exposure))
        total = int(r.get(keys.exposure_reserved_total(exposure)) or 0)
        if total != sum(int(v) for v in holds.values()):
            tally.problem(
                f"{exposure}: reserved total {total} is not the sum of its "
                f"{len(holds)} reservations"
            )


def check_portfolio(r: redis.Redis, tally: Tally) -> None:
    """The bank's counters (workflow.portfolio.figures) against the same figures recomputed
    from every deal the bank holds."""
    ids = r.zrange(keys.by_bank(BANK), 0, -1)
    outstanding: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    by_buyer: dict[str, Counter[str]] = defaultdict(Counter)
    by_country: dict[str, Counter[str]] = defaultdict(Counter)
    borrowers: Counter[str] = Counter()
    ever: set[str] = set()
    for part in chunks(ids, 1000):
        pipe = r.pipeline(transaction=False)
        for deal_id in part:
            pipe.hmget(
                keys.deal(deal_id), "state", "bank_id", "loan", "currency", "buyer", "exporter_uscc"
            )
        for state, bank_id, loan, currency, buyer, uscc in pipe.execute():
            if bank_id != BANK or not loan:
                continue
            ever.add(uscc)
            if state not in OPEN:
                continue
            cents = to_cents(Decimal(json.loads(loan)["outstanding"]))
            code, country = json.loads(buyer)["code"], json.loads(buyer)["country"]
            outstanding[currency] += cents
            by_buyer[currency][code] += cents
            by_country[currency][country] += cents
            if state == State.OVERDUE:
                overdue[currency] += cents
            borrowers[uscc] += 1
    got = figures(r, BANK)

    def cents(amounts: dict[str, Decimal]) -> dict[str, int]:
        return {k: to_cents(v) for k, v in amounts.items() if v}

    comparisons = {
        "outstanding": (cents(got["outstanding"]), dict(+outstanding)),
        "overdue": (cents(got["overdue"]), dict(+overdue)),
        "by_buyer": (
            {c: cents(v) for c, v in got["by_buyer"].items()},
            {c: dict(+v) for c, v in by_buyer.items()},
        ),
        "by_country": (
            {c: cents(v) for c, v in got["by_country"].items()},
            {c: dict(+v) for c, v in by_country.items()},
        ),
        "borrowers": (got["borrowers"], len(borrowers)),
        "first_time_borrowers": (got["first_time_borrowers"], len(ever)),
        "open advances per borrower": (
            {k: int(v) for k, v in r.hgetall(keys.portfolio_borrowers(BANK)).items()},
            dict(borrowers),
        ),
    }
    for name, (counted, recomputed) in comparisons.items():
        if counted != recomputed:
            tally.problem(f"portfolio {name}: counters say {counted}, the deals {recomputed}")
    tally.notes.append(
        f"portfolio of {BANK} = the deals: outstanding {dict(outstanding)} cents, overdue "
        f"{dict(overdue)}, {len(borrowers)} borrower(s), {len(ever)} first-time"
    )


SWEEP_SCENARIOS = (sweeps_under_kills,)

__all__ = ["SWEEP_SCENARIOS", "sweeps_under_kills"]
