"""Time travel: deals driven through 200 days on an injectable clock, beat's sweeps run every
simulated day, and after every step the world is checked against the deals themselves.

A :class:`Scenario` is one deal's story: its application and, by day, what its actors do (the
:class:`Action` vocabulary: submit, approve, decline, disburse, repay, notice, claim,
recover, expect). A :class:`Timeline` runs any number of them at once over the same days, on
two banks and three buyers. Each simulated day it moves the clock to 09:00 in Shanghai and runs
what beat runs (the bank-deadline sweep with the re-routing it dispatches, the approval lapse
sweep, the arrears sweep, the stranded-deal sweep), then the day's actions; a worker's step
(verify, route, the insurer's decision) runs when its task would be dispatched. After every
sweep that moved a deal, every action and every worker step, :meth:`Timeline.check`
recomputes from the deals alone (``tests/recompute.py``) and compares:

- each buyer exposure's reservations and total against the live deals (the invoice total
  until paid out, then the principal outstanding; nothing once ended), never over the limit;
- each bank's portfolio counters and ``workflow.portfolio.figures``;
- each deal's event log: versions in order, chained from state to state, rebuilding the hash;
- the due-date and approval-lapse schedules: exactly the right deals at the right times (and,
  once the day's sweeps ran, nothing left due).

A new action is a small dataclass whose ``run`` does its steps through ``tl.step`` (checked
after each; see ``Defer``); a new scenario is a few lines of SCENARIOS.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import DEMO_TODAY, Clock, dongfang_application, make_application
from tests.recompute import (
    event_log_problems,
    expected_figures,
    expected_holdings,
    expected_portfolio,
    expected_schedule_members,
    loan_problems,
    read_deals,
)
from workflow import keys
from workflow.business_days import BUSINESS_TZ
from workflow.deal import Application, Buyer, Deal
from workflow.interest import accrue
from workflow.money import to_cents
from workflow.pipeline import (
    Decision,
    Deferral,
    DeferralRefused,
    Disbursement,
    Repayment,
    Workflow,
)
from workflow.portfolio import figures
from workflow.states import State

S = State
BOC, ICBC = "BOC-NB", "ICBC-NB"  # BOC: interest up front, 4.20 %; ICBC: at maturity, 4.50 %
DAYS = 200
# Day 0 at 09:00 in Shanghai (01:00 UTC): beat's sweeps, then the day's business.
START = datetime.combine(DEMO_TODAY, time(1, 0), UTC)
US_BUYER = Buyer("US-0042", "Acme Imports Inc.", "US")


def day(when: date, plus: int = 0) -> int:
    """The timeline day of a date (plus some days)."""
    return (when - DEMO_TODAY).days + plus


def day_ends(when: date) -> datetime:
    """The end of a business day: midnight in Shanghai."""
    return datetime.combine(when + timedelta(days=1), time(0), BUSINESS_TZ)


def score(moment: datetime) -> float:
    return round(moment.timestamp(), 3)


def _json(fields: Mapping[str, str], name: str, default: Any = None) -> Any:
    raw = fields.get(name)
    return json.loads(raw) if raw else default


# --- the timeline --------------------------------------------------------------------------------


@dataclass
class Tracked:
    """A scenario's deal in a timeline: its id once submitted, and its payment references."""

    scenario: Scenario
    id: str = ""
    refs: Any = field(default_factory=lambda: itertools.count(1))

    def ref(self, kind: str) -> str:
        return f"{self.scenario.name.replace(' ', '-')}-{kind}-{next(self.refs)}"

    def __str__(self) -> str:
        return f"'{self.scenario.name}' ({self.id or 'not submitted'})"


class Timeline:
    """Scenarios run together over the same days on one workflow and one clock."""

    def __init__(self, wf: Workflow, clock: Clock, limits: Mapping[str, int]):
        self.wf, self.clock, self.limits = wf, clock, limits
        self.banks = sorted(b.bank_id for b in wf.reference.banks())
        self.plan: dict[int, list[tuple[Tracked, Action]]] = defaultdict(list)
        self.tracked: list[Tracked] = []
        self.day = 0
        self.swept_at = START  # when the arrears sweep last ran
        self.checks = 0
        clock.now = START

    def add(self, scenario: Scenario) -> Tracked:
        assert min(scenario.steps) >= 0 and max(scenario.steps) <= DAYS, scenario.name
        tracked = Tracked(scenario)
        self.tracked.append(tracked)
        for when, actions in scenario.steps.items():
            self.plan[when] += [(tracked, action) for action in actions]
        return tracked

    def run(self, days: int = DAYS) -> None:
        for today in range(days + 1):
            self.day = today
            self.clock.now = START + timedelta(days=today)
            self.sweep()
            for tracked, action in self.plan.get(today, []):
                action.run(self, tracked)
        for tracked in self.tracked:
            tracked.scenario.verify(self.deal(tracked))

    def sweep(self) -> None:
        """What beat runs, and the worker steps its sweeps dispatch."""
        wf = self.wf
        rerouted = wf.expire_deadlines()
        if rerouted:
            self.check(f"the deadline sweep re-routed {rerouted}")
        for deal_id in rerouted:
            self.step(f"route {deal_id}", lambda d=deal_id: wf.route(d))
        lapsed = wf.lapse_approvals()
        if lapsed:
            self.check(f"the lapse sweep cancelled {lapsed}")
        moved = wf.sweep_arrears()
        self.swept_at = self.clock()
        if moved:
            self.check(f"the arrears sweep moved {moved}")
        for deal_id, state in wf.stranded():
            work = {S.ROUTING: wf.route, S.CLAIM_FILED: wf.settle_claim}.get(state, wf.verify)
            self.step(f"re-dispatched {state} {deal_id}", lambda d=deal_id, w=work: w(d))
        self.check("the day's sweeps", settled=True)

    def step(self, what: str, work: Callable[[], Any]) -> Any:
        """Do one step, then check the world."""
        result = work()
        self.check(what)
        return result

    def deal(self, tracked: Tracked) -> Deal:
        found = self.wf.store.get(tracked.id)
        assert found is not None, f"{tracked} was never stored"
        return found

    # --- the checks ------------------------------------------------------------------------

    def check(self, after: str, settled: bool = False) -> None:
        self.checks += 1
        problems = self.problems(settled)
        if problems:
            raise AssertionError(f"day {self.day} ({self.clock().isoformat()}), after {after}:"
                                 + "".join(f"\n  {p}" for p in problems))

    def problems(self, settled: bool) -> list[str]:
        r = self.wf.store.redis
        deals, logs = read_deals(r, [t.id for t in self.tracked if t.id])
        schedules = expected_schedule_members(deals)
        # Everything else in one round trip: the exposures, the counters, the schedules.
        pipe = r.pipeline(transaction=False)
        pipe.keys(keys.deal("*"))
        for exposure in self.limits:
            pipe.hgetall(keys.exposure_reservations(exposure))
            pipe.get(keys.exposure_reserved_total(exposure))
        for bank in self.banks:
            pipe.hgetall(keys.portfolio(bank))
            pipe.hgetall(keys.portfolio_borrowers(bank))
        for key in schedules:
            pipe.zrange(key, 0, -1, withscores=True)
        pipe.zrangebyscore(keys.deadlines(), "-inf", score(self.clock()))
        read = iter(pipe.execute())

        found = []
        stored_deals = {k for k in next(read) if not k.endswith(":events")}
        if stored_deals != {keys.deal(d) for d in deals}:
            found.append(f"deals stored {sorted(stored_deals)}, the timeline's {sorted(deals)}")
        for deal_id, fields in deals.items():
            found += event_log_problems(deal_id, fields, logs[deal_id])
            found += loan_problems(deal_id, fields)

        holdings = expected_holdings(deals)
        for exposure, cap in self.limits.items():
            held, total = next(read), int(next(read) or 0)
            if held != holdings.get(exposure, {}):
                found.append(f"{exposure} holds {held}, the deals {holdings.get(exposure, {})}")
            if total != sum(int(c) for c in held.values()) or total > cap:
                found.append(f"{exposure} total {total}: holdings {held}, limit {cap}")

        for bank in self.banks:
            counters, borrowers = expected_portfolio(deals, bank)
            stored = {k: int(v) for k, v in next(read).items()}
            if stored != counters:
                found.append(f"{bank} portfolio counters {stored}, the deals {counters}")
            held_by = {k: int(v) for k, v in next(read).items()}
            if held_by != borrowers:
                found.append(f"{bank} borrowers {held_by}, the deals {borrowers}")
            today = self.wf.today()
            shown, recomputed = figures(r, bank, today), expected_figures(deals, bank, today)
            if shown != recomputed:
                found.append(f"{bank} figures {shown}, the deals {recomputed}")

        for key, members in schedules.items():
            scheduled = dict(next(read))
            if set(scheduled) != members:
                found.append(f"{key} holds {sorted(scheduled)}, should hold {sorted(members)}")
                continue
            for deal_id, at in scheduled.items():
                due = self.scheduled_at(key, deals[deal_id])
                if at != score(due):
                    found.append(f"{key}: {deal_id} at {at}, should be at {due.isoformat()}")
                if settled and at <= score(self.clock()):
                    found.append(f"{key}: {deal_id} still due after the day's sweeps")
        late = next(read)
        if settled and late:
            found.append(f"bank deadlines passed and not swept: {late}")
        return found

    def scheduled_at(self, key: str, fields: Mapping[str, str]) -> datetime:
        """When a schedule should next act on a deal, from the deal and the reference data."""
        if key == keys.approval_lapses():
            bank = self.wf.reference.bank(fields["bank_id"])
            days = (bank and bank.approval_lapse_days) or self.wf.settings.approval_lapse_days
            return datetime.fromisoformat(fields["approved_at"]) + timedelta(days=days)
        loan = _json(fields, "loan")
        due = date.fromisoformat(loan["due_date"])
        policy = self.wf.reference.policy(fields["policy_no"])
        if fields["state"] == S.DISBURSED:
            return day_ends(due + timedelta(days=policy.grace_days))
        # Overdue: the notice deadline until the sweep passed it, then the claim deadline.
        notice_by = due + timedelta(days=policy.notice_days)
        claim_by = due + timedelta(days=policy.claim_days)
        missed = _json(fields, "missed_deadlines", [])
        if "notice" not in missed and self.swept_at < day_ends(notice_by):
            return day_ends(notice_by)
        return day_ends(claim_by)


# --- actions ----------------------------------------------------------------------------------


class Action:
    """What one actor does to a scenario's deal on a day (each step checked)."""

    def run(self, tl: Timeline, deal: Tracked) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Submit(Action):
    """The exporter submits the application; the drain verifies (and routes) it."""

    def run(self, tl: Timeline, deal: Tracked) -> None:
        def submit() -> None:
            deal.id = tl.wf.submit(deal.scenario.app).deal.id

        tl.step(f"{deal.scenario.name} submitted", submit)
        for ready in tl.wf.take_ready(100):
            tl.step(f"verify {ready}", lambda d=ready: tl.wf.verify(d))


@dataclass(frozen=True)
class Expect(Action):
    state: State
    bank: str | None = None

    def run(self, tl: Timeline, deal: Tracked) -> None:
        now = tl.deal(deal)
        assert now.state == self.state, f"day {tl.day}: {deal} is {now.state}, not {self.state}"
        if self.bank:
            assert now.bank_id == self.bank, f"day {tl.day}: {deal} is at {now.bank_id}"


@dataclass(frozen=True)
class Approve(Action):
    """The bank the deal is pending at approves it (a checker confirms where it must)."""

    bank: str
    amount: str | None = None

    def run(self, tl: Timeline, deal: Tracked) -> None:
        Expect(S.PENDING_BANK, self.bank).run(tl, deal)
        amount = Decimal(self.amount) if self.amount else None
        moved = tl.step(f"{self.bank} approves {deal}", lambda: tl.wf.decide(
            deal.id, self.bank, Decision(True, "maker", amount=amount)))
        if moved.state == S.PENDING_BANK:
            moved = tl.step(f"{self.bank}'s checker confirms {deal}", lambda: tl.wf.decide(
                deal.id, self.bank, Decision(True, "checker", may_check=True)))
        assert moved.state == S.APPROVED, f"{deal} approved into {moved.state}"


@dataclass(frozen=True)
class Decline(Action):
    """The bank declines; the routing task offers the deal to the next bank."""

    bank: str

    def run(self, tl: Timeline, deal: Tracked) -> None:
        Expect(S.PENDING_BANK, self.bank).run(tl, deal)
        tl.step(f"{self.bank} declines {deal}", lambda: tl.wf.decide(
            deal.id, self.bank, Decision(False, "maker", reason="not our sector")))
        tl.step(f"route {deal}", lambda: tl.wf.route(deal.id))


@dataclass(frozen=True)
class Disburse(Action):
    """The approving bank pays out (the approved amount unless given), value today."""

    amount: str | None = None

    def run(self, tl: Timeline, deal: Tracked) -> None:
        now = tl.deal(deal)
        amount = Decimal(self.amount) if self.amount else now.decimal("approved_amount")
        payout = Disbursement("officer", amount, tl.wf.today(), deal.ref("PAY"))
        paid = tl.step(f"{now.bank_id} pays out {amount} on {deal}",
                       lambda: tl.wf.disburse(deal.id, now.bank_id, payout))
        assert paid.state == S.DISBURSED


def owed_today(deal: Deal, today: date) -> Decimal:
    """Principal and interest owed on an advance with value date today."""
    loan = deal.get("loan")
    accrued_to = date.fromisoformat(loan["accrued_to"])
    outstanding = Decimal(loan["outstanding"])
    return outstanding + Decimal(loan["accrued_interest"]) + accrue(
        outstanding, Decimal(loan["annual_rate"]), accrued_to, max(today, accrued_to),
        loan["basis"])


@dataclass(frozen=True)
class Repay(Action):
    """The bank records money received, value today: an amount, or all that is owed."""

    amount: str | None = None

    def run(self, tl: Timeline, deal: Tracked) -> None:
        now = tl.deal(deal)
        today = tl.wf.today()
        amount = Decimal(self.amount) if self.amount else owed_today(now, today)
        payment = Repayment("officer", amount, today, deal.ref("R"))
        paid = tl.step(f"{now.bank_id} records {amount} repaid on {deal}",
                       lambda: tl.wf.repay(deal.id, now.bank_id, payment))
        assert paid.state == (S.REPAID if self.amount is None else now.state)


@dataclass(frozen=True)
class Defer(Action):
    """The bank asks to move the due date to ``to``; the insurer agrees or (``refused``, with
    its reasons) does not, and the deal stays as it was."""

    to: date
    refused: tuple[str, ...] = ()

    def run(self, tl: Timeline, deal: Tracked) -> None:
        bank = tl.deal(deal).bank_id
        request = Deferral("officer", self.to, deal.ref("DEF"))

        def defer() -> object:
            try:
                return tl.wf.defer(deal.id, bank, request)
            except DeferralRefused as refusal:
                return refusal

        answer = tl.step(f"{bank} asks to defer {deal} to {self.to}", defer)
        if self.refused:
            assert isinstance(answer, DeferralRefused), f"{deal} deferred to {self.to}"
            assert tl.deal(deal).get("deferrals")[-1]["reasons"] == list(self.refused)
        else:
            assert not isinstance(answer, DeferralRefused), answer
            assert answer.state == S.DISBURSED and answer.get("loan")["due_date"] == (
                self.to.isoformat())


@dataclass(frozen=True)
class Notice(Action):
    """The bank sends the insurer its notice of possible loss."""

    def run(self, tl: Timeline, deal: Tracked) -> None:
        bank = tl.deal(deal).bank_id
        tl.step(f"{bank} files the notice on {deal}",
                lambda: tl.wf.file_notice(deal.id, bank, "officer"))


@dataclass(frozen=True)
class Claim(Action):
    """The bank claims the loss (the invoice total unless given); the worker then asks the
    insurer for its decision."""

    loss: str | None = None

    def run(self, tl: Timeline, deal: Tracked) -> None:
        now = tl.deal(deal)
        loss = Decimal(self.loss) if self.loss else now.decimal("invoice_total")
        tl.step(f"{now.bank_id} claims {loss} on {deal}", lambda: tl.wf.file_claim(
            deal.id, now.bank_id, "officer", loss, ["policy", "invoice", "B/L"]))
        tl.step(f"the insurer decides on {deal}", lambda: tl.wf.settle_claim(deal.id))


@dataclass(frozen=True)
class Recover(Action):
    """The bank recovers money from the buyer after the indemnity."""

    amount: str

    def run(self, tl: Timeline, deal: Tracked) -> None:
        bank = tl.deal(deal).bank_id
        tl.step(f"{bank} recovers {self.amount} on {deal}", lambda: tl.wf.record_recovery(
            deal.id, bank, "officer", Decimal(self.amount), deal.ref("REC")))


# --- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One deal's story: its application, what happens on which day, how it ends."""

    name: str
    app: Application
    steps: Mapping[int, Sequence[Action]]
    ends: State
    then: Callable[[Deal], object] | None = None

    def verify(self, deal: Deal) -> None:
        assert deal.state == self.ends, f"'{self.name}' ended {deal.state}, not {self.ends}"
        if self.then:
            self.then(deal)


def haixin(number: str, amount: str, due: date, requested: str) -> Application:
    """Haixin's invoice to Müller (DE-0001, shipped 2026-11-10) or, for an INV-HX-2xxx, to
    Acme (US-0042, shipped 2026-11-05), as the insurer's declarations have them."""
    to_us = number.startswith("INV-HX-2")
    return make_application(
        number=number, amount=amount, due_date=due, requested_amount=requested,
        **({"buyer": US_BUYER, "shipment_date": "2026-11-05"} if to_us else {}))


def dongfang(number: str, amount: str, due: date, requested: str) -> Application:
    return dongfang_application(number=number, amount=amount, due_date=due,
                                requested_amount=requested)


def decided(deal: Deal, field_name: str) -> str:
    return deal.get("claim_decision")[field_name]


def _paid_in_full(deal: Deal) -> None:
    loan = deal.get("loan")
    assert loan["principal_paid"] == loan["principal"] and loan["outstanding"] == "0.00"


def _late_paid_with_interest(deal: Deal) -> None:
    _paid_in_full(deal)
    assert Decimal(deal.get("loan")["interest_paid"]) > 0  # at maturity, and late
    assert deal.fields["overdue_since"] == date(2027, 1, 16).isoformat()


def _indemnified(indemnity: str, reasons: list[str]) -> Callable[[Deal], None]:
    def check(deal: Deal) -> None:
        assert decided(deal, "indemnity") == indemnity
        assert decided(deal, "reasons") == reasons
    return check


def _rejected_as(reason: str) -> Callable[[Deal], None]:
    def check(deal: Deal) -> None:
        assert decided(deal, "reasons") == [reason] and decided(deal, "indemnity") == "0.00"
    return check


def _recoveries_shared(deal: Deal) -> None:
    # Covered loss 90,000 (the invoice total less the 10,000 repaid), indemnity 81,000:
    # recoveries go 90 % to the insurer, on the running total.
    assert (decided(deal, "covered_loss"), decided(deal, "indemnity")) == ("90000.00",
                                                                            "81000.00")
    shares = [(r["to_insurer"], r["to_bank"]) for r in deal.get("recoveries")]
    assert shares == [("27000.00", "3000.00"), ("4500.00", "500.00")]


def _both_deadlines_missed(deal: Deal) -> None:
    assert deal.get("missed_deadlines") == ["notice", "claim"]
    assert not deal.fields.get("notice_filed_at")


def _lapsed(deal: Deal) -> None:
    assert deal.get("reasons") == ["APPROVAL_LAPSED"]
    assert not deal.get("loan")


def _deferred_once(first_due: date, due: date) -> Callable[[Deal], None]:
    def check(deal: Deal) -> None:
        _paid_in_full(deal)
        loan = deal.get("loan")
        assert (loan["first_due_date"], loan["due_date"]) == (first_due.isoformat(),
                                                               due.isoformat())
        assert deal.fields["deferral_count"] == "1" and not deal.fields.get("overdue_since")
    return check


def _never_deferred(deal: Deal) -> None:
    _paid_in_full(deal)
    assert not deal.fields.get("deferral_count")
    assert [d["granted"] for d in deal.get("deferrals")] == [False, False]


E_DUE = date(2026, 12, 15)  # 'claim rejected': claim deadline E_DUE + 120
G_DUE = date(2027, 1, 20)  # 'late notice': notice deadline G_DUE + 60
K_DUE, K_LATER = date(2027, 1, 20), date(2027, 3, 9)  # 'deferral granted'
L_DUE = date(2027, 2, 10)  # 'deferral refused'

SCENARIOS = [
    Scenario("repaid in full", haixin("INV-HX-1001", "100000.00", date(2027, 1, 9), "80000.00"), {
        0: [Submit(), Approve(BOC)],
        1: [Disburse()],
        day(date(2027, 1, 9)): [Repay()],  # on the due date: the interest was taken up front
    }, S.REPAID, _paid_in_full),
    Scenario("repaid in parts",
             haixin("INV-HX-2001", "120000.00", date(2027, 2, 1), "90000.00"), {
        0: [Submit(), Decline(BOC), Approve(ICBC)],
        2: [Disburse()],
        20: [Repay("30000.00")],
        45: [Repay("30000.00")],
        day(date(2027, 2, 1)): [Expect(S.DISBURSED), Repay()],
    }, S.REPAID, _paid_in_full),
    Scenario("overdue then paid late", dongfang("INV-DF-3001", "100000.00", date(2027, 1, 15),
                                                "70000.00"), {
        0: [Submit(), Approve(ICBC)],
        3: [Disburse()],
        day(date(2027, 1, 15)): [Expect(S.DISBURSED)],
        day(date(2027, 1, 15), 1): [Expect(S.OVERDUE)],
        day(date(2027, 1, 15), 8): [Repay("20000.00")],
        day(date(2027, 1, 15), 23): [Expect(S.OVERDUE), Repay()],
    }, S.REPAID, _late_paid_with_interest),
    Scenario("overdue then claim paid", haixin("INV-HX-1002", "100000.00", date(2026, 12, 20),
                                               "80000.00"), {
        0: [Submit(), Approve(BOC)],
        1: [Disburse()],
        day(date(2026, 12, 20), 1): [Expect(S.OVERDUE)],
        day(date(2026, 12, 20), 10): [Notice()],
        day(date(2026, 12, 20), 20): [Claim()],
    }, S.INDEMNIFIED, _indemnified("90000.00", [])),
    Scenario("claim rejected", haixin("INV-HX-1003", "80000.00", E_DUE, "60000.00"), {
        # BOC lets its decision deadline pass: the deadline sweep sends the deal on to ICBC.
        0: [Submit(), Expect(S.PENDING_BANK, BOC)],
        1: [Expect(S.PENDING_BANK, ICBC), Approve(ICBC)],
        2: [Disburse()],
        day(E_DUE, 8): [Notice()],
        day(E_DUE, 121): [Expect(S.OVERDUE)],  # the claim deadline passed last night
        day(E_DUE, 122): [Claim()],
    }, S.CLAIM_REJECTED, _rejected_as("CLAIM_LATE")),
    Scenario("notice deadline missed", dongfang("INV-DF-3002", "80000.00", date(2026, 12, 31),
                                                "60000.00"), {
        0: [Submit(), Approve(ICBC)],
        1: [Disburse()],
        day(date(2026, 12, 31), 60): [Expect(S.OVERDUE)],
    }, S.OVERDUE, _both_deadlines_missed),
    Scenario("late notice cuts the indemnity",
             haixin("INV-HX-2002", "80000.00", G_DUE, "60000.00"), {
        0: [Submit(), Approve(BOC)],
        1: [Disburse()],
        day(G_DUE, 70): [Notice()],  # ten days after the notice deadline
        day(G_DUE, 73): [Claim()],
    }, S.INDEMNIFIED, _indemnified("57600.00", ["NOTICE_LATE"])),
    Scenario("approval lapsed", haixin("INV-HX-1004", "100000.00", date(2027, 2, 20),
                                       "80000.00"), {
        5: [Submit(), Approve(BOC)],
        34: [Expect(S.APPROVED)],
        35: [Expect(S.CANCELLED)],
    }, S.CANCELLED, _lapsed),
    Scenario("deferral granted", haixin("INV-HX-1006", "100000.00", K_DUE, "80000.00"), {
        10: [Submit(), Approve(BOC)],
        11: [Disburse()],
        day(K_DUE, 1): [Expect(S.OVERDUE)],
        day(K_DUE, 8): [Defer(K_LATER)],  # the insurer agrees: back on a due date to come
        day(K_LATER): [Expect(S.DISBURSED), Repay()],
    }, S.REPAID, _deferred_once(K_DUE, K_LATER)),
    Scenario("deferral refused", haixin("INV-HX-1007", "100000.00", L_DUE, "80000.00"), {
        # Submitted once the lapsed approval gave its room back.
        36: [Submit(), Approve(BOC)],
        37: [Disburse()],
        day(L_DUE, 2): [Defer(L_DUE + timedelta(days=200), ("DEFERRAL_BEYOND_COVER",))],
        day(L_DUE, 65): [Defer(L_DUE + timedelta(days=90), ("DEFERRAL_TOO_LATE",)),
                         Expect(S.OVERDUE)],
        day(L_DUE, 70): [Repay()],
    }, S.REPAID, _never_deferred),
    Scenario("recoveries after indemnity", haixin("INV-HX-1005", "100000.00", date(2027, 1, 5),
                                                  "80000.00"), {
        0: [Submit(), Approve(BOC)],
        1: [Disburse()],
        30: [Repay("10000.00")],
        day(date(2027, 1, 5), 8): [Notice()],
        day(date(2027, 1, 5), 18): [Claim("90000.00")],
        day(date(2027, 1, 5), 40): [Recover("30000.00")],
        day(date(2027, 1, 5), 70): [Recover("5000.00")],
    }, S.INDEMNIFIED, _recoveries_shared),
]


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture
def new_timeline(make_workflow, demo_reference) -> Callable[[Any], Timeline]:
    def build(client: Any) -> Timeline:
        clock = Clock(START)
        limits = {lim.exposure: to_cents(lim.amount) for lim in demo_reference.limits}
        return Timeline(make_workflow(client, clock), clock, limits)

    return build


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_each_scenario_alone_over_200_days(new_timeline, fake_redis, scenario):
    timeline = new_timeline(fake_redis)
    timeline.add(scenario)
    timeline.run()


def test_every_scenario_at_once_over_the_same_200_days(new_timeline, any_redis):
    """Two exporters, three buyers, two banks: every scenario in one timeline, the limits,
    portfolios and schedules shared (on fakeredis and on a real Redis)."""
    timeline = new_timeline(any_redis)
    for scenario in SCENARIOS:
        timeline.add(scenario)
    timeline.run()
    r = timeline.wf.store.redis
    boc, icbc = figures(r, BOC), figures(r, ICBC)
    # Left out at the end: the advance whose deadlines were missed, at ICBC (EUR 60,000).
    assert icbc["outstanding"] == icbc["overdue"] == {"EUR": Decimal("60000.00")}
    assert boc["outstanding"] == {} and icbc["indemnity"] == {}
    assert boc["indemnity"] == {"USD": Decimal("90000.00") + Decimal("57600.00")
                                + Decimal("81000.00")}
    assert (boc["first_time_borrowers"], icbc["first_time_borrowers"]) == (1, 2)
    assert timeline.checks > DAYS
