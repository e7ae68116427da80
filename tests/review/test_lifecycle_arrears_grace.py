"""Review: a policy whose grace period reaches its notice deadline makes a timely notice
impossible, since a notice is refused until the sweep has moved the deal overdue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.workflow.test_arrears import disbursed, policy_terms, to_day
from tests.workflow.test_servicing import BOC, DUE
from workflow.errors import WrongState
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def test_a_prompt_bank_can_file_its_notice_in_time_whatever_the_grace(wf):
    # Accepted by the reference loader: grace 0-180 days, notice 1-720, only notice <= claim.
    policy_terms(wf, "SIN-2026-0001", grace_days=30, notice_days=30)
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=20))  # unpaid, within grace: the notice is refused
    with pytest.raises(WrongState):
        wf.file_notice(deal.id, BOC, "wang")
    to_day(wf, DUE + timedelta(days=31))  # the first day the sweep moves it
    wf.sweep_arrears()
    assert wf.store.get(deal.id).state == State.OVERDUE
    noticed = wf.file_notice(deal.id, BOC, "wang")  # at once
    wf.file_claim(deal.id, BOC, "wang", Decimal("100000.00"), ["invoice"])
    decided = wf.settle_claim(deal.id)
    # The notice is recorded late, and the indemnity cut by 20 % (NOTICE_LATE), although the
    # bank could not have filed it one day earlier.
    assert noticed.fields["notice_late_days"] == "0"
    assert decided.get("claim_decision")["reasons"] == []
