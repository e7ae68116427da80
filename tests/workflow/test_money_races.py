"""Disbursements, repayments and new deals racing on one buyer limit, on a real Redis: the
limit is never over-committed, each repayment lands once, the portfolios follow the deals."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
import redis

from tests.conftest import DE_EXPOSURE, make_application
from tests.recompute import (
    event_log_problems,
    expected_figures,
    expected_holdings,
    expected_portfolio,
    expected_schedule_members,
    loan_problems,
    read_deals,
)
from tests.support import watching_limit
from tests.workflow.test_concurrency import run_together
from tests.workflow.test_servicing import bank_terms
from workflow import keys
from workflow.pipeline import Decision, Disbursement, Repayment, WrongState
from workflow.portfolio import figures
from workflow.reference import Declaration, ReferenceData, store_reference
from workflow.states import State

pytestmark = pytest.mark.redis

S = State
BOC, ICBC = "BOC-NB", "ICBC-NB"
LIMIT_CENTS = 50_000_000  # LIM-HX-DE0001: USD 500,000 on Müller (DE-0001)
DEALS = 16  # USD 30,000 invoices: 480,000 reserved once all are placed
LATECOMERS = 12  # more of them (360,000), submitted while the money moves, until they fit
INVOICE, REQUESTED = Decimal("30000.00"), Decimal("24000.00")


def declare(redis, numbers: list[str]) -> None:
    store_reference(redis, ReferenceData(declarations=[
        Declaration("SIN-2026-0001", "DE-0001", n, date(2026, 11, 10), date(2026, 11, 12))
        for n in numbers]))


def application(number: str):
    return make_application(number=number, amount=str(INVOICE), requested_amount=str(REQUESTED))


def until_it_lands(work, attempts: int = 500):
    """Call ``work`` the way a bank's system retries: again while the deal is not paid out
    yet or is changing too fast; any other refusal is the answer."""
    for _ in range(attempts):
        try:
            return work()
        except WrongState as exc:
            if exc.details.get("state") not in (None, str(S.APPROVED)):
                raise
    raise AssertionError(f"{work} never landed")


@pytest.fixture
def wide_redis(real_redis, redis_server_url):
    """The real test Redis through a pool wide enough for every racing thread at once."""
    client = redis.Redis.from_url(redis_server_url, decode_responses=True, max_connections=400)
    yield client
    client.close()


def test_disbursements_repayments_and_new_deals_racing_on_one_limit(wide_redis, make_workflow):
    real_redis = wide_redis
    wf = make_workflow(real_redis)
    bank_terms(wf, ICBC, min_amount="10000.00")  # so ICBC takes these small advances too
    numbers = [f"INV-R-{i:03d}" for i in range(DEALS + LATECOMERS)]
    declare(real_redis, [*numbers, "INV-R-FILL"])

    # One exporter, one buyer limit: every deal placed at BOC; BOC approves the even ones
    # and declines the odd ones, which ICBC then approves (all at once).
    def place(i: int) -> str:
        deal = wf.verify(wf.submit(application(numbers[i])).deal.id)
        assert deal.state == S.PENDING_BANK and deal.bank_id == BOC
        if i % 2:
            wf.decide(deal.id, BOC, Decision(False, "wang", reason="sector"))
            assert wf.route(deal.id).bank_id == ICBC
        bank = ICBC if i % 2 else BOC
        assert wf.decide(deal.id, bank, Decision(True, "li")).state == S.APPROVED
        return deal.id

    placed = run_together(DEALS, place)
    assert not [p for p in placed if isinstance(p, Exception)], placed
    deals = wf.store.get_many(placed)
    assert Counter(d.bank_id for d in deals) == {BOC: DEALS // 2, ICBC: DEALS // 2}
    # A deal pending for the last 20,000 fills the limit: a latecomer fits only once
    # disbursements and repayments gave room back.
    filler = make_application(number="INV-R-FILL", amount="20000.00",
                              requested_amount="15000.00")
    assert wf.verify(wf.submit(filler).deal.id).state == S.PENDING_BANK
    assert wf.store.reserved_cents(DE_EXPOSURE) == LIMIT_CENTS

    # The race: each advance paid out twice with one reference (a double submit); three
    # repayments of each, every one sent twice, settling half the deals at each bank in full.
    # Meanwhile the latecomers are submitted and verified against the room coming back: one
    # refused for the limit tries again (a new deal for its invoice) once more money moved.
    today = wf.today()
    jobs = []
    plans: dict[str, list[Repayment]] = {}
    for n, deal in enumerate(deals):
        approved = deal.decimal("approved_amount")
        payout = Disbursement("li", approved, today, f"PAY-{deal.id}")
        parts = [Decimal("5000.00"), Decimal("3000.00")]
        parts.append(approved - sum(parts) if n % 4 < 2 else Decimal("1000.00"))
        plans[deal.id] = [Repayment("li", amount, today, f"R{k}-{deal.id}")
                          for k, amount in enumerate(parts)]
        jobs += [("disburse", deal, payout)] * 2
        jobs += [("repay", deal, payment) for payment in plans[deal.id] for _ in range(2)]
    money_jobs = len(jobs)
    jobs += [("submit", number, None) for number in numbers[DEALS:]]
    progress = threading.Condition()
    finished = [0]  # money jobs done

    def latecomer(number: str):
        seen = -1
        while True:
            with progress:
                progress.wait_for(lambda last=seen: finished[0] != last)
                seen = finished[0]
            deal = wf.verify(wf.submit(application(number)).deal.id)
            if deal.state != S.REJECTED or seen == money_jobs:
                return deal

    def act(i: int):
        kind, target, money = jobs[i]
        if kind == "submit":
            return latecomer(target)
        try:
            if kind == "disburse":
                return wf.disburse(target.id, target.bank_id, money)
            return until_it_lands(lambda: wf.repay(target.id, target.bank_id, money))
        finally:
            with progress:
                finished[0] += 1
                progress.notify_all()

    with watching_limit(real_redis, DE_EXPOSURE) as samples:
        results = run_together(len(jobs), act)

    failures = [(jobs[i][0], r) for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failures == []
    assert len(samples) > 1 and all(total == held <= LIMIT_CENTS for total, held in samples)

    stored, logs = read_deals(real_redis)
    for deal in deals:
        fields, log = stored[deal.id], logs[deal.id]
        loan = wf.store.get(deal.id).get("loan")
        assert loan["reference"] == f"PAY-{deal.id}"
        types = Counter(e["type"] for e in log)
        assert types["disbursed"] == 1, f"{deal.id} paid out {types['disbursed']} times"
        # Every repayment landed, and landed once.
        landed = wf.store.get(deal.id).get("repayments")
        assert sorted(r["reference"] for r in landed) == sorted(
            p.reference for p in plans[deal.id])
        assert types["repayment"] + types["repaid"] == len(plans[deal.id])
        paid = sum(p.amount for p in plans[deal.id])
        assert Decimal(loan["principal_paid"]) == paid  # same-day: no interest owed
        assert Decimal(loan["outstanding"]) == Decimal(loan["principal"]) - paid
        settled = Decimal(loan["outstanding"]) == 0
        assert S(fields["state"]) == (S.REPAID if settled else S.DISBURSED)
    for deal_id, fields in stored.items():
        assert event_log_problems(deal_id, fields, logs[deal_id]) == []
        assert loan_problems(deal_id, fields) == []
    # The due-date schedule watches the advances still out; no approval is left to lapse.
    for key, members in expected_schedule_members(stored).items():
        assert set(real_redis.zrange(key, 0, -1)) == members, key

    # The limit holds exactly what the live deals hold, never more than its amount; the
    # latecomers are placed once room came back, refused till then for the limit only.
    holdings = real_redis.hgetall(keys.exposure_reservations(DE_EXPOSURE))
    assert holdings == expected_holdings(stored)[DE_EXPOSURE]
    total = wf.store.reserved_cents(DE_EXPOSURE)
    assert total == sum(int(c) for c in holdings.values()) <= LIMIT_CENTS
    assert [d.state for d in results[money_jobs:]] == [S.PENDING_BANK] * LATECOMERS
    refused = [f for f in stored.values() if f["state"] == S.REJECTED]
    assert all(f["reasons"] == '["LIMIT_INSUFFICIENT"]' for f in refused)

    # Each bank's portfolio counters are what its deals make them.
    for bank in (BOC, ICBC):
        counters, borrowers = expected_portfolio(stored, bank)
        assert {k: int(v) for k, v in real_redis.hgetall(keys.portfolio(bank)).items()} == (
            counters)
        assert {k: int(v) for k, v in real_redis.hgetall(
            keys.portfolio_borrowers(bank)).items()} == borrowers
        assert figures(real_redis, bank) == expected_figures(stored, bank)
    # Half of each bank's advances are out, less the 9,000 repaid on each.
    assert figures(real_redis, BOC)["outstanding"] == {"USD": 4 * Decimal("15000.00")}
    assert figures(real_redis, ICBC)["outstanding"] == {"USD": 4 * Decimal("13950.00")}
