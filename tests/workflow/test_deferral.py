"""Deferral (延期还本付息): the due date moves only with the insurer's consent, and the sweeps,
the interest, the insurer's deadlines and the portfolio follow the new date."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY
from tests.workflow.test_arrears import disbursed, policy_terms, to_day
from tests.workflow.test_servicing import BOC, DUE, approved, bank_terms, payment, payout
from workflow import keys
from workflow.business_days import due_score
from workflow.errors import DeferralRefused, InvalidDecision, WrongState
from workflow.gateway import InsurerUnavailable
from workflow.interest import ACT_360, accrue
from workflow.pipeline import Deferral
from workflow.portfolio import figures
from workflow.states import State

POLICY = "SIN-2026-0001"
RATE = Decimal("0.0420")


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def deferral(new_due: date, ref: str = "DEF-1") -> Deferral:
    return Deferral("wang", new_due, ref, note="buyer's season slipped")


def events(wf, deal_id: str) -> list[str]:
    return [e["type"] for e in wf.store.events(deal_id)]


def test_a_deferral_moves_the_due_date_and_the_overdue_sweep_follows_it(wf):
    deal = disbursed(wf)
    new_due = DUE + timedelta(days=30)
    moved = wf.defer(deal.id, BOC, deferral(new_due))
    assert moved.state == State.DISBURSED
    loan = moved.get("loan")
    assert loan["due_date"] == new_due.isoformat() and loan["first_due_date"] == DUE.isoformat()
    assert moved.fields["due_date"] == new_due.isoformat()
    assert moved.fields["deferral_count"] == "1"
    (record,) = moved.get("deferrals")
    assert record["granted"] is True and record["days_past_due"] == 0
    assert record["from_due_date"] == DUE.isoformat() and record["insurer_ref"]
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) == due_score(new_due)
    to_day(wf, DUE + timedelta(days=1))
    assert wf.sweep_arrears() == []  # the old due date passed: nothing is late
    to_day(wf, new_due + timedelta(days=1))
    assert wf.sweep_arrears() == [deal.id]
    late = wf.store.get(deal.id)
    # The insurer's deadlines count from the due date its cover follows now.
    assert late.fields["notice_deadline"] == (new_due + timedelta(days=60)).isoformat()


def test_an_overdue_advance_deferred_is_current_again_and_keeps_its_arrears_on_record(wf):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=10))
    wf.sweep_arrears()
    wf.file_notice(deal.id, BOC, "wang")
    assert figures(wf.store.redis, BOC)["overdue"] == {"USD": Decimal("80000.00")}
    new_due = DUE + timedelta(days=40)
    moved = wf.defer(deal.id, BOC, deferral(new_due))
    assert moved.state == State.DISBURSED
    for gone in ("overdue_since", "notice_deadline", "claim_deadline", "notice_filed_at"):
        assert not moved.fields.get(gone), gone
    (record,) = moved.get("deferrals")
    assert record["days_past_due"] == 10
    assert record["arrears"]["overdue_since"] == (DUE + timedelta(days=1)).isoformat()
    assert record["arrears"]["notice_filed_at"]
    book = figures(wf.store.redis, BOC, today=wf.today())
    assert book["overdue"] == {} and book["arrears"] == {}
    assert book["deferred"] == {"USD": Decimal("80000.00")} and book["deferred_deals"] == 1
    # A claim now would be on arrears the insurer agreed to bridge: the deal is not overdue.
    with pytest.raises(WrongState):
        wf.file_claim(deal.id, BOC, "wang", Decimal("1000.00"), ["invoice"])


@pytest.mark.parametrize(
    ("days_late", "new_due", "reason"),
    [
        (0, DUE + timedelta(days=181), "DEFERRAL_BEYOND_COVER"),  # past max_deferral_days
        (61, DUE + timedelta(days=90), "DEFERRAL_TOO_LATE"),  # after the notice deadline
    ],
)
def test_the_insurer_refuses_and_nothing_moves_but_the_refusal_is_recorded(
    wf, days_late, new_due, reason
):
    deal = disbursed(wf)
    if days_late:
        to_day(wf, DUE + timedelta(days=days_late))
        wf.sweep_arrears()
    before = wf.store.get(deal.id)
    with pytest.raises(DeferralRefused) as refused:
        wf.defer(deal.id, BOC, deferral(new_due))
    assert refused.value.reasons == [reason]
    after = wf.store.get(deal.id)
    assert after.state == before.state and after.get("loan") == before.get("loan")
    assert not after.fields.get("deferral_count")
    assert after.get("deferrals")[0]["granted"] is False
    assert events(wf, deal.id)[-1] == "deferral_refused"
    assert wf.store.redis.zscore(keys.due_dates(), deal.id) == wf.store.redis.zscore(
        keys.due_dates(), before.id
    )
    # The same request again gets the same answer without asking the insurer twice.
    with pytest.raises(DeferralRefused):
        wf.defer(deal.id, BOC, deferral(new_due))
    assert wf.store.get(deal.id).version == after.version


def test_cover_cannot_follow_past_the_policy_end(wf):
    deal = disbursed(wf)
    policy_terms(wf, POLICY, end=(DUE + timedelta(days=20)).isoformat())
    with pytest.raises(DeferralRefused) as refused:
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=21)))
    assert refused.value.reasons == ["DEFERRAL_BEYOND_COVER"]


def test_the_insurers_longest_deferral_counts_from_the_first_due_date(wf):
    deal = disbursed(wf)
    wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=100), "D-1"))
    second = wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=180), "D-2"))
    assert second.fields["deferral_count"] == "2"
    assert second.get("loan")["first_due_date"] == DUE.isoformat()
    with pytest.raises(DeferralRefused):
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=181), "D-3"))
    assert wf.store.get(deal.id).fields["deferral_count"] == "2"


@pytest.mark.parametrize(
    ("new_due", "latest"),
    [
        (DUE, None),  # not later than the due date in force
        (DUE - timedelta(days=1), None),
        (DUE + timedelta(days=31), DUE + timedelta(days=30)),  # past the programme's end
    ],
)
def test_bad_dates_are_refused_by_field_and_change_nothing(wf, new_due, latest):
    if latest:
        wf.settings = dataclasses.replace(wf.settings, deferral_latest_date=latest)
    deal = disbursed(wf)
    with pytest.raises(InvalidDecision) as refused:
        wf.defer(deal.id, BOC, deferral(new_due))
    assert refused.value.field == "new_due_date"
    assert wf.store.get(deal.id).version == deal.version


def test_a_new_due_date_already_past_is_refused(wf):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=10))
    with pytest.raises(InvalidDecision):
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=5)))


def test_a_repeat_is_the_same_deferral_and_the_same_reference_for_another_date_is_refused(wf):
    deal = disbursed(wf)
    first = wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30)))
    assert wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30))).version == first.version
    with pytest.raises(WrongState):
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=60)))
    assert events(wf, deal.id).count("deferred") == 1


def test_only_an_advance_of_the_holding_bank_before_a_claim_is_deferred(wf):
    deal = approved(wf)
    with pytest.raises(WrongState):  # not paid out yet
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30)))
    wf.disburse(deal.id, BOC, payout())
    with pytest.raises(Exception) as refused:
        wf.defer(deal.id, "ICBC-NB", deferral(DUE + timedelta(days=30)))
    assert type(refused.value).__name__ in ("DealNotFound", "WrongState")
    to_day(wf, DUE + timedelta(days=5))
    wf.sweep_arrears()
    wf.file_notice(deal.id, BOC, "wang")
    wf.file_claim(deal.id, BOC, "wang", Decimal("80000.00"), ["invoice"])
    with pytest.raises(WrongState):
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30)))


def test_nothing_is_written_while_the_insurer_cannot_answer(wf, monkeypatch):
    deal = disbursed(wf)

    def down(request):
        raise InsurerUnavailable("timeout")

    monkeypatch.setattr(wf.insurer, "consent_to_deferral", down)
    with pytest.raises(InsurerUnavailable):
        wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30)))
    assert wf.store.get(deal.id).version == deal.version


def test_a_discounted_advance_deferred_owes_interest_from_the_old_to_the_new_due_date(wf):
    deal = disbursed(wf)  # BOC: interest to DUE deducted at payout
    new_due = DUE + timedelta(days=30)
    wf.defer(deal.id, BOC, deferral(new_due))
    to_day(wf, new_due)
    interest = accrue(Decimal("80000.00"), RATE, DUE, new_due, ACT_360)
    assert interest == Decimal("280.00")  # 80,000 x 4.2 % x 30 / 360
    paid = wf.repay(deal.id, BOC, payment(str(Decimal("80000.00") + interest), new_due, "R-1"))
    assert paid.state == State.REPAID
    assert paid.get("repayments")[0]["interest"] == "280.00"


def test_interest_at_maturity_runs_on_from_the_value_date_through_the_deferral(wf):
    bank_terms(wf, BOC, interest_mode="at_maturity")
    deal = disbursed(wf)
    new_due = DUE + timedelta(days=30)
    wf.defer(deal.id, BOC, deferral(new_due))
    to_day(wf, new_due)
    interest = accrue(Decimal("80000.00"), RATE, DEMO_TODAY, new_due, ACT_360)
    paid = wf.repay(deal.id, BOC, payment(str(Decimal("80000.00") + interest), new_due, "R-1"))
    assert paid.state == State.REPAID


def test_the_portfolio_counts_deferred_advances_until_they_close(wf):
    deal = disbursed(wf)
    wf.defer(deal.id, BOC, deferral(DUE + timedelta(days=30)))
    book = figures(wf.store.redis, BOC)
    assert book["deferred_deals"] == 1 and book["deferred"] == {"USD": Decimal("80000.00")}
    wf.clock.advance(days=1)
    wf.repay(deal.id, BOC, payment("30000.00", wf.today(), "R-1"))
    assert figures(wf.store.redis, BOC)["deferred"] == {"USD": Decimal("50000.00")}
    wf.clock.advance(days=1)
    owed = wf.store.get(deal.id).get("loan")["outstanding"]
    wf.repay(deal.id, BOC, payment(owed, wf.today(), "R-2"))  # discounted: no interest yet
    book = figures(wf.store.redis, BOC)
    assert book["deferred_deals"] == 0 and book["deferred"] == {}
