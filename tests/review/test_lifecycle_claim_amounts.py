"""Review: what the indemnity is computed from, and how recoveries are shared."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.workflow.test_claims import claimed, overdue
from tests.workflow.test_servicing import BOC, DUE, payment
from workflow import keys
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def test_a_limit_cut_after_the_deal_was_financed_does_not_cut_its_indemnity(wf):
    deal = overdue(wf, 10)
    assert deal.fields["limit_id"] == "LIM-HX-DE0001"
    wf.file_notice(deal.id, BOC, "wang")
    # The insurer lowers the buyer limit for new shipments (a reference reload). Cover on a
    # shipment already made and financed (insured 90,000 on the deal) stays as it was; but
    # settle_claim reads the limit as it is *now* (Claims._filing: reference.limit(...)).
    record = json.loads(wf.store.redis.get(keys.limit("LIM-HX-DE0001")))
    record["amount"] = "10000.00"
    wf.store.redis.set(keys.limit("LIM-HX-DE0001"), json.dumps(record))
    paid = claimed(wf, deal)
    assert paid.fields["insured_amount"] == "90000.00"
    assert paid.get("claim_decision")["indemnity"] == "90000.00"  # got 9000.00


def test_the_loss_claimed_cannot_exceed_what_the_buyer_still_owes(wf):
    deal = overdue(wf, 10)
    day = DUE + timedelta(days=10)
    # The buyer paid 79,000 of the 100,000 invoice (recorded on the advance); 1,000 of the
    # advance is outstanding, 21,000 of the invoice unpaid.
    wf.repay(deal.id, BOC, payment("79000.00", day, "R-1"))
    wf.file_notice(deal.id, BOC, "wang")
    paid = claimed(wf, deal, "100000.00")
    assert paid.state == State.INDEMNIFIED
    # Indemnity 90,000 on a loss of at most 21,000 (and an advance of 1,000 outstanding).
    assert Decimal(paid.get("claim_decision")["covered_loss"]) <= Decimal("21000.00")


def test_recoveries_in_parts_share_as_one_recovery_would(wf):
    deal = overdue(wf, 10)
    wf.file_notice(deal.id, BOC, "wang")
    claimed(wf, deal)  # covered 100,000, indemnity 90,000: the insurer bore 90 %
    for n in range(10):
        wf.record_recovery(deal.id, BOC, "wang", Decimal("0.05"), f"REC-{n}")
    recoveries = wf.store.get(deal.id).get("recoveries")
    to_insurer = sum(Decimal(r["to_insurer"]) for r in recoveries)
    # 0.50 recovered: the insurer's 90 % is 0.45; each 0.045 rounded half up gives it 0.50
    # and the bank nothing: per-part rounding drifts by a cent per part.
    assert abs(to_insurer - Decimal("0.45")) <= Decimal("0.01"), to_insurer
