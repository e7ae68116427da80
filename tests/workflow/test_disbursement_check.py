"""Maker-checker on large disbursements: at or above the bank's second-approval amount the
advance goes out only when a different officer with the checker role confirms it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY
from tests.workflow.test_servicing import BOC, approved, bank_terms, payout, reserved
from workflow import keys
from workflow.errors import MakerCheckerRefused, WrongState
from workflow.states import State
from workflow.visibility import exporter_events


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


@pytest.fixture
def entered(wf):
    """An approved deal whose 80,000 payout the maker "wang" entered for a check."""
    deal = approved(wf)
    bank_terms(wf, BOC, second_approval_above="50000.00")
    moved = wf.disburse(deal.id, BOC, payout())
    assert moved.state == State.APPROVED
    return moved


def awaiting(wf, officer: str = "wang") -> tuple[bool, bool]:
    r = wf.store.redis
    return (
        bool(r.zcard(keys.awaiting_check(BOC))),
        bool(r.zcard(keys.first_approvals_by(BOC, officer))),
    )


def test_a_large_payout_waits_for_a_checker_and_nothing_moves_meanwhile(wf, entered):
    pending = entered.get("pending_disbursement")
    assert pending["officer"] == "wang" and pending["amount"] == "80000.00"
    assert pending["reference"] == "BOC-PAY-1" and pending["ref"]
    assert not entered.get("loan")
    assert reserved(wf) == Decimal("100000.00")  # still the reservation, not a use
    assert awaiting(wf) == (True, True)
    # Queued by when the approval lapses: the payout must be checked before then.
    r = wf.store.redis
    assert r.zscore(keys.awaiting_check(BOC), entered.id) == r.zscore(
        keys.approval_lapses(), entered.id
    )
    # The maker's double click is the same entry; another payout meanwhile is refused.
    assert wf.disburse(entered.id, BOC, payout()).version == entered.version
    with pytest.raises(WrongState):
        wf.disburse(entered.id, BOC, payout(ref="BOC-PAY-2"))


def test_a_checker_confirms_on_the_makers_terms(wf, entered):
    ref = entered.get("pending_disbursement")["ref"]
    paid = wf.confirm_disbursement(entered.id, BOC, "li", True, ref)
    assert paid.state == State.DISBURSED
    loan = paid.get("loan")
    assert (loan["officer"], loan["checker"], loan["principal"]) == ("wang", "li", "80000.00")
    assert loan["value_date"] == DEMO_TODAY.isoformat() and loan["reference"] == "BOC-PAY-1"
    assert not paid.get("pending_disbursement")
    assert reserved(wf) == Decimal("80000.00")
    assert awaiting(wf) == (False, False)
    # The checker's double click, and the maker's repeat, are the same payout.
    assert wf.confirm_disbursement(entered.id, BOC, "li", True, ref).version == paid.version
    assert wf.disburse(entered.id, BOC, payout()).version == paid.version


@pytest.mark.parametrize(
    ("officer", "may_check", "code"),
    [("wang", True, "SAME_OFFICER"), (" WANG ", True, "SAME_OFFICER"),
     ("zhao", False, "CHECKER_ROLE_REQUIRED")],
)
def test_the_maker_or_an_officer_without_the_role_cannot_confirm(
    wf, entered, officer, may_check, code
):
    ref = entered.get("pending_disbursement")["ref"]
    with pytest.raises(MakerCheckerRefused) as refused:
        wf.confirm_disbursement(entered.id, BOC, officer, may_check, ref)
    assert refused.value.code == code
    assert wf.store.get(entered.id).version == entered.version


def test_a_page_showing_another_entry_confirms_nothing(wf, entered):
    with pytest.raises(WrongState):
        wf.confirm_disbursement(entered.id, BOC, "li", True, "0" * 16)
    ref = entered.get("pending_disbursement")["ref"]
    wf.return_disbursement(entered.id, BOC, "li", True, "wrong value date", ref)
    again = wf.disburse(entered.id, BOC, payout(ref="BOC-PAY-2"))
    with pytest.raises(WrongState):  # the old page's entry was sent back
        wf.confirm_disbursement(entered.id, BOC, "li", True, ref)
    assert wf.store.get(entered.id).version == again.version


def test_sent_back_or_recalled_the_deal_stays_approved_to_be_paid_anew(wf, entered):
    ref = entered.get("pending_disbursement")["ref"]
    with pytest.raises(MakerCheckerRefused):  # neither maker nor checker
        wf.return_disbursement(entered.id, BOC, "zhao", False, "no", ref)
    back = wf.return_disbursement(entered.id, BOC, "li", True, "wrong value date", ref)
    assert back.state == State.APPROVED and not back.get("pending_disbursement")
    assert back.get("returned_disbursement")["reason"] == "wrong value date"
    assert awaiting(wf) == (False, False)
    again = wf.disburse(entered.id, BOC, payout(ref="BOC-PAY-2"))
    recalled = wf.return_disbursement(
        entered.id, BOC, "wang", False, "typo", again.get("pending_disbursement")["ref"]
    )
    assert not recalled.get("pending_disbursement")


def test_below_the_amount_one_officer_pays_out(wf):
    deal = approved(wf)
    bank_terms(wf, BOC, second_approval_above="80000.01")
    assert wf.disburse(deal.id, BOC, payout()).state == State.DISBURSED


def test_an_approval_lapsing_with_a_payout_unchecked_takes_the_entry_with_it(wf, entered):
    wf.clock.advance(days=30, seconds=1)
    assert wf.lapse_approvals() == [entered.id]
    lapsed = wf.store.get(entered.id)
    assert lapsed.state == State.CANCELLED and not lapsed.get("pending_disbursement")
    assert awaiting(wf) == (False, False)
    assert reserved(wf) == Decimal("0.00")


def test_the_exporter_never_sees_the_banks_check(wf, entered):
    ref = entered.get("pending_disbursement")["ref"]
    wf.return_disbursement(entered.id, BOC, "li", True, "no", ref)
    seen = exporter_events(wf.store.events(entered.id))
    assert not {"disbursement_entered", "disbursement_returned"} & {e["type"] for e in seen}
    for event in seen:
        assert not {"pending_disbursement", "returned_disbursement"} & set(event.get("set", {}))


def test_no_payout_once_the_approval_has_lapsed_even_before_the_sweep(wf):
    deal = approved(wf)
    wf.clock.advance(days=30, seconds=1)  # the lapse sweep has not run yet
    with pytest.raises(WrongState):
        wf.disburse(deal.id, BOC, payout())
    assert wf.store.get(deal.id).state == State.APPROVED
    assert wf.lapse_approvals() == [deal.id]


def test_a_checker_cannot_confirm_after_the_approval_lapsed(wf, entered):
    wf.clock.advance(days=30, seconds=1)
    with pytest.raises(WrongState):
        wf.confirm_disbursement(
            entered.id, BOC, "li", True, entered.get("pending_disbursement")["ref"]
        )
