"""Claims: notice of possible loss, claim, the insurer's decision by the local rules, and
recoveries shared in proportion to the loss each party bore."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.workflow.test_arrears import disbursed, to_day
from tests.workflow.test_servicing import BOC, DUE, reserved
from workflow.claim_rules import LATE_NOTICE_CUT
from workflow.errors import InvalidDecision, WrongState
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def overdue(wf, days_late: int = 1):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=days_late))
    wf.sweep_arrears()
    assert wf.store.get(deal.id).state == State.OVERDUE
    return deal


def claimed(wf, deal, loss: str = "100000.00"):
    wf.file_claim(deal.id, BOC, "wang", Decimal(loss), ["policy", "invoice", "B/L"])
    return wf.settle_claim(deal.id)


def test_notice_then_claim_then_indemnity_releases_the_limit(wf):
    deal = overdue(wf, 10)
    with pytest.raises(WrongState):  # a claim follows the notice
        wf.file_claim(deal.id, BOC, "wang", Decimal("1000.00"), ["invoice"])
    noticed = wf.file_notice(deal.id, BOC, "wang")
    assert noticed.fields["notice_late_days"] == "0" and noticed.fields["notice_ref"]
    assert wf.file_notice(deal.id, BOC, "wang").version == noticed.version  # idempotent
    with pytest.raises(InvalidDecision):
        wf.file_claim(deal.id, BOC, "wang", Decimal("100000.01"), ["invoice"])  # > invoices
    paid = claimed(wf, deal)
    assert paid.state == State.INDEMNIFIED
    decision = paid.get("claim_decision")
    # Covered loss 100,000 (the invoice total, within the 500,000 limit) x 90 % cover.
    assert decision["covered_loss"] == "100000.00" and decision["indemnity"] == "90000.00"
    assert reserved(wf) == Decimal("0.00")
    assert wf.settle_claim(deal.id).version == paid.version  # asked again: nothing twice


def test_a_late_notice_cuts_the_indemnity_and_a_very_late_one_voids_it(wf):
    deal = overdue(wf, 70)  # notice deadline: due + 60
    wf.file_notice(deal.id, BOC, "wang")
    cut = claimed(wf, deal)
    assert cut.state == State.INDEMNIFIED
    expected = (Decimal("90000.00") * (1 - LATE_NOTICE_CUT)).quantize(Decimal("0.01"))
    assert cut.get("claim_decision")["indemnity"] == str(expected)
    assert cut.get("claim_decision")["reasons"] == ["NOTICE_LATE"]


def test_a_notice_more_than_30_days_late_voids_the_claim(wf):
    deal = overdue(wf, 95)
    wf.file_notice(deal.id, BOC, "wang")
    rejected = claimed(wf, deal)
    assert rejected.state == State.CLAIM_REJECTED
    assert rejected.get("claim_decision")["reasons"] == ["NOTICE_LATE"]
    assert reserved(wf) == Decimal("0.00")


def test_a_claim_after_its_deadline_is_rejected(wf):
    deal = overdue(wf, 10)
    wf.file_notice(deal.id, BOC, "wang")
    to_day(wf, DUE + timedelta(days=121))
    rejected = claimed(wf, deal)
    assert rejected.state == State.CLAIM_REJECTED
    assert rejected.get("claim_decision")["reasons"] == ["CLAIM_LATE"]


def test_recoveries_are_shared_in_proportion_to_the_loss_each_bore(wf):
    deal = overdue(wf, 10)
    wf.file_notice(deal.id, BOC, "wang")
    claimed(wf, deal)  # covered 100,000; insurer bore 90,000, the bank 10,000
    after = wf.record_recovery(deal.id, BOC, "wang", Decimal("20000.00"), "REC-1")
    share = after.get("recoveries")[0]
    assert (share["to_insurer"], share["to_bank"]) == ("18000.00", "2000.00")
    again = wf.record_recovery(deal.id, BOC, "wang", Decimal("20000.00"), "REC-1")
    assert again.version == after.version
    with pytest.raises(WrongState):  # the same reference for another amount is a mistake
        wf.record_recovery(deal.id, BOC, "wang", Decimal("5000.00"), "REC-1")
    assert wf.store.get(deal.id).version == after.version
    with pytest.raises(InvalidDecision):
        wf.record_recovery(deal.id, BOC, "wang", Decimal("80000.01"), "REC-2")


def test_the_stranded_sweep_asks_the_insurer_again_for_a_claim_left_undecided(wf):
    deal = overdue(wf, 10)
    wf.file_notice(deal.id, BOC, "wang")
    wf.file_claim(deal.id, BOC, "wang", Decimal("50000.00"), ["invoice"])
    # The task that asks the insurer was lost: the sweep finds the claim once it is stale.
    wf.clock.advance(seconds=wf.settings.stale_after_seconds + 1)
    found = wf.stranded()
    assert (deal.id, State.CLAIM_FILED) in found
    assert wf.settle_claim(deal.id).state == State.INDEMNIFIED
