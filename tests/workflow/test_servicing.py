"""Disbursement, repayment and lapsed approvals: the money, the interest and the buyer limit."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DE_EXPOSURE, DEMO_TODAY, make_application
from workflow import keys
from workflow.errors import InvalidDecision, WrongState
from workflow.interest import ACT_360, ACT_365, accrue, basis_for
from workflow.pipeline import Decision, Disbursement, Repayment
from workflow.states import State

BOC = "BOC-NB"  # demo: interest deducted up front, 4.20 % a year
DUE = date(2027, 1, 9)  # the demo invoice's due date


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def bank_terms(wf, bank_id: str, **fields) -> None:
    """Change a demo bank's product terms in place (what a reference reload would do)."""
    record = json.loads(wf.store.redis.get(keys.bank(bank_id)))
    record.update(fields)
    wf.store.redis.set(keys.bank(bank_id), json.dumps(record))


def approved(wf, amount: str = "80000.00"):
    deal = wf.verify(wf.submit(make_application()).deal.id)
    assert deal.state == State.PENDING_BANK and deal.bank_id == BOC
    deal = wf.decide(deal.id, BOC, Decision(True, "wang", amount=Decimal(amount)))
    assert deal.state == State.APPROVED
    return deal


def reserved(wf) -> Decimal:
    return Decimal(wf.store.reserved_cents(DE_EXPOSURE)) / 100


def payout(amount: str = "80000.00", value_date: date = DEMO_TODAY, ref: str = "BOC-PAY-1"):
    return Disbursement("wang", Decimal(amount), value_date, ref)


def payment(amount: str, value_date: date, ref: str):
    return Repayment("wang", Decimal(amount), value_date, ref)


# --- interest --------------------------------------------------------------------------------


def test_day_count_bases_and_rounding():
    assert basis_for("USD") == basis_for("EUR") == basis_for("CNY") == ACT_360
    assert basis_for("GBP") == basis_for("HKD") == ACT_365
    assert basis_for("USD", {"USD": ACT_365}) == ACT_365
    # 100,000 x 4.2 % x 30 / 360 = 350.00; x 31 / 365 = 356.7123... -> 356.71
    start = date(2026, 1, 1)
    assert accrue(Decimal(100000), Decimal("0.042"), start, start + timedelta(30), ACT_360) == (
        Decimal("350.00"))
    assert accrue(Decimal(100000), Decimal("0.042"), start, start + timedelta(31), ACT_365) == (
        Decimal("356.71"))
    # Half up: 1,000 x 1.5 % x 3 / 360 = 0.125 -> 0.13
    assert accrue(Decimal(1000), Decimal("0.015"), start, start + timedelta(3), ACT_360) == (
        Decimal("0.13"))
    assert accrue(Decimal(1000), Decimal("0.015"), start, start, ACT_360) == Decimal("0.00")


# --- disbursement ----------------------------------------------------------------------------


def test_disbursement_turns_the_reservation_into_the_principal_used(wf):
    deal = approved(wf)
    assert reserved(wf) == Decimal("100000.00")  # the invoice total, reserved at verification
    paid = wf.disburse(deal.id, BOC, payout("75000.00"))
    assert paid.state == State.DISBURSED
    assert reserved(wf) == Decimal("75000.00")  # the rest released in the same step
    loan = paid.get("loan")
    days = (DUE - DEMO_TODAY).days
    upfront = accrue(Decimal(75000), Decimal("0.0420"), DEMO_TODAY, DUE, ACT_360)
    assert upfront == (Decimal(75000) * Decimal("0.042") * days / 360).quantize(Decimal("0.01"))
    assert loan["interest_mode"] == "upfront" and loan["basis"] == ACT_360
    assert Decimal(loan["upfront_interest"]) == upfront
    assert Decimal(loan["net_paid_out"]) == Decimal(75000) - upfront
    assert loan["due_date"] == DUE.isoformat() and paid.fields["due_date"] == DUE.isoformat()
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) is not None
    assert wf.store.redis.zscore(keys.approval_lapses(), deal.id) is None


def test_a_repeated_disbursement_is_the_same_one_and_another_is_refused(wf):
    deal = approved(wf)
    first = wf.disburse(deal.id, BOC, payout())
    again = wf.disburse(deal.id, BOC, payout())
    assert again.version == first.version
    with pytest.raises(WrongState):
        wf.disburse(deal.id, BOC, payout(ref="BOC-PAY-2"))


@pytest.mark.parametrize(
    ("amount", "value_date", "field"),
    [
        ("80000.01", DEMO_TODAY, "amount"),  # above the approved amount
        ("0.00", DEMO_TODAY, "amount"),
        ("1000.00", DEMO_TODAY + timedelta(days=1), "value_date"),  # not paid yet
        ("1000.00", DEMO_TODAY - timedelta(days=1), "value_date"),  # before the approval
    ],
)
def test_disbursement_refusals_name_the_field_and_change_nothing(wf, amount, value_date, field):
    deal = approved(wf)
    with pytest.raises(InvalidDecision) as refused:
        wf.disburse(deal.id, BOC, payout(amount, value_date))
    assert refused.value.field == field
    assert wf.store.get(deal.id).state == State.APPROVED
    assert reserved(wf) == Decimal("100000.00")


def test_only_the_approving_bank_disburses(wf):
    deal = approved(wf)
    with pytest.raises(Exception) as refused:
        wf.disburse(deal.id, "ICBC-NB", payout())
    assert type(refused.value).__name__ in ("DealNotFound", "WrongState")


# --- repayment -------------------------------------------------------------------------------


def test_interest_at_maturity_accrues_and_repayments_go_to_interest_first(wf):
    bank_terms(wf, BOC, interest_mode="at_maturity")
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("72000.00"))
    wf.clock.advance(days=30)
    day30 = DEMO_TODAY + timedelta(days=30)
    interest30 = accrue(Decimal(72000), Decimal("0.0420"), DEMO_TODAY, day30, ACT_360)
    assert interest30 == Decimal("252.00")
    part = wf.repay(deal.id, BOC, payment("20252.00", day30, "R1"))
    assert part.state == State.DISBURSED
    record = part.get("repayments")[-1]
    assert (record["interest"], record["principal"]) == ("252.00", "20000.00")
    assert part.get("loan")["outstanding"] == "52000.00"
    assert reserved(wf) == Decimal("52000.00")  # room comes back with the principal only

    wf.clock.advance(days=15)
    day45 = day30 + timedelta(days=15)
    owed_interest = accrue(Decimal(52000), Decimal("0.0420"), day30, day45, ACT_360)  # 91.00
    with pytest.raises(InvalidDecision) as too_much:
        wf.repay(deal.id, BOC, payment(str(Decimal(52000) + owed_interest + Decimal("0.01")),
                                       day45, "R2"))
    assert too_much.value.field == "amount"
    done = wf.repay(deal.id, BOC, payment(str(Decimal(52000) + owed_interest), day45, "R2"))
    assert done.state == State.REPAID
    assert reserved(wf) == Decimal("0.00")
    loan = done.get("loan")
    assert Decimal(loan["interest_paid"]) == interest30 + owed_interest
    assert loan["principal_paid"] == "72000.00"
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) is None
    # The invoice is free again: a new application for it is taken.
    assert wf.submit(make_application()).deal.state == State.SUBMITTED


def test_an_interest_only_payment_leaves_the_limit_use_as_it_is(wf):
    bank_terms(wf, BOC, interest_mode="at_maturity")
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("72000.00"))
    wf.clock.advance(days=30)
    paid = wf.repay(deal.id, BOC, payment("100.00", DEMO_TODAY + timedelta(days=30), "R1"))
    assert paid.get("loan")["outstanding"] == "72000.00"
    assert paid.get("loan")["accrued_interest"] == "152.00"
    assert reserved(wf) == Decimal("72000.00")


def test_a_discounted_advance_owes_no_interest_until_its_due_date(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("80000.00"))
    wf.clock.advance(days=10)
    done = wf.repay(deal.id, BOC, payment("80000.00", DEMO_TODAY + timedelta(days=10), "R1"))
    assert done.state == State.REPAID  # interest was taken up front
    assert done.get("repayments")[0]["interest"] == "0.00"


def test_late_payment_of_a_discounted_advance_accrues_from_the_due_date(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout("80000.00"))
    late = DUE + timedelta(days=9)
    wf.clock.advance(days=(late - DEMO_TODAY).days)
    owed = accrue(Decimal(80000), Decimal("0.0420"), DUE, late, ACT_360)  # 84.00
    with pytest.raises(InvalidDecision):
        wf.repay(deal.id, BOC, payment(str(Decimal(80000) + owed + Decimal("0.01")), late, "R1"))
    done = wf.repay(deal.id, BOC, payment(str(Decimal(80000) + owed), late, "R1"))
    assert done.state == State.REPAID


def test_a_repeated_repayment_is_recorded_once(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout())
    wf.clock.advance(days=5)
    day5 = DEMO_TODAY + timedelta(days=5)
    first = wf.repay(deal.id, BOC, payment("1000.00", day5, "R1"))
    again = wf.repay(deal.id, BOC, payment("1000.00", day5, "R1"))
    assert again.version == first.version and len(again.get("repayments")) == 1
    with pytest.raises(WrongState):
        wf.repay(deal.id, BOC, payment("2000.00", day5, "R1"))  # one reference, two amounts


def test_repayment_value_dates_never_go_back(wf):
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout())
    wf.clock.advance(days=5)
    wf.repay(deal.id, BOC, payment("1000.00", DEMO_TODAY + timedelta(days=5), "R1"))
    with pytest.raises(InvalidDecision) as refused:
        wf.repay(deal.id, BOC, payment("1000.00", DEMO_TODAY + timedelta(days=4), "R2"))
    assert refused.value.field == "value_date"


def test_no_repayment_before_disbursement(wf):
    deal = approved(wf)
    with pytest.raises(WrongState):
        wf.repay(deal.id, BOC, payment("1000.00", DEMO_TODAY, "R1"))


# --- lapse -----------------------------------------------------------------------------------


def test_an_approval_never_disbursed_lapses_and_frees_the_limit(wf):
    deal = approved(wf)
    wf.clock.advance(days=29)
    assert wf.lapse_approvals() == []
    wf.clock.advance(days=1, seconds=1)
    assert wf.lapse_approvals() == [deal.id]
    lapsed = wf.store.get(deal.id)
    assert lapsed.state == State.CANCELLED
    assert lapsed.get("reasons") == ["APPROVAL_LAPSED"]
    assert reserved(wf) == Decimal("0.00")
    assert wf.store.redis.zscore(keys.approval_lapses(), deal.id) is None
    assert wf.lapse_approvals() == []


def test_a_bank_sets_its_own_lapse_period_and_a_disbursed_deal_never_lapses(wf):
    bank_terms(wf, BOC, approval_lapse_days=3)
    first = approved(wf)
    wf.disburse(first.id, BOC, payout())
    wf.clock.advance(days=3, seconds=1)
    assert wf.lapse_approvals() == []
    assert wf.store.get(first.id).state == State.DISBURSED


@pytest.mark.redis
def test_concurrent_repayments_each_land_once_and_the_limit_follows(real_redis, make_workflow):
    """Twelve repayments of one advance at once (several bank systems, retries): each lands
    once or is refused whole; outstanding, the repayments and the limit use agree."""
    import threading

    from workflow.pipeline import WorkflowError

    wf = make_workflow(real_redis)
    deal = approved(wf)
    wf.disburse(deal.id, BOC, payout())
    wf.clock.advance(days=3)
    day = DEMO_TODAY + timedelta(days=3)
    barrier = threading.Barrier(12)
    landed, refused = [], []

    def pay(n: int) -> None:
        barrier.wait()
        try:
            wf.repay(deal.id, BOC, payment("1000.00", day, f"R-{n}"))
            landed.append(n)
        except WorkflowError:
            refused.append(n)  # "changing too fast": the client retries; nothing was written

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = wf.store.get(deal.id)
    paid = after.get("repayments")
    assert sorted(int(r["reference"][2:]) for r in paid) == sorted(landed)
    assert len(landed) + len(refused) == 12 and landed
    outstanding = Decimal("80000.00") - Decimal(1000) * len(landed)
    assert Decimal(after.get("loan")["outstanding"]) == outstanding
    assert reserved(wf) == outstanding


def test_the_portfolio_follows_disbursement_repayment_and_overdue(wf):
    from workflow.business_days import day_after
    from workflow.portfolio import figures

    deal = approved(wf)
    assert figures(wf.store.redis, BOC)["outstanding"] == {}
    wf.disburse(deal.id, BOC, payout("80000.00"))
    got = figures(wf.store.redis, BOC)
    assert got["outstanding"] == {"USD": Decimal("80000.00")}
    assert got["by_buyer"] == {"USD": {"DE-0001": Decimal("80000.00")}}
    assert got["by_country"] == {"USD": {"DE": Decimal("80000.00")}}
    assert (got["borrowers"], got["first_time_borrowers"]) == (1, 1)
    wf.clock.advance(days=2)
    wf.repay(deal.id, BOC, payment("30000.00", DEMO_TODAY + timedelta(days=2), "R1"))
    assert figures(wf.store.redis, BOC)["outstanding"] == {"USD": Decimal("50000.00")}
    wf.clock.advance(seconds=(day_after(DUE) - wf.clock()).total_seconds() + 60)
    wf.sweep_arrears()
    got = figures(wf.store.redis, BOC)
    assert got["overdue"] == {"USD": Decimal("50000.00")}
    owed = wf.store.get(deal.id).get("loan")
    late = wf.today()
    total = Decimal(owed["outstanding"]) + accrue(
        Decimal(owed["outstanding"]), Decimal("0.0420"), DUE, late, ACT_360)
    wf.repay(deal.id, BOC, payment(str(total), late, "R2"))
    got = figures(wf.store.redis, BOC)
    assert got["outstanding"] == {} and got["overdue"] == {} and got["borrowers"] == 0
    assert got["first_time_borrowers"] == 1  # ever: still one
