"""Whatever the application, the chained verify (alone or in a drain's batch) writes exactly what
its moves committed one by one write: the deal, its log, every index, lock, limit, counter and
bank feed (offered, rejected on cover or on the limit, unplaced)."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import dongfang_application, make_application
from tests.workflow.test_chain import keyspace
from workflow import intake
from workflow.states import State

DEAL_ID = "20261126-CHAINP001"
HX = [f"INV-HX-10{n:02d}" for n in range(1, 6)] + ["INV-HX-1099"]  # 1099: never declared

haixin = st.builds(
    lambda numbers, amount, asked, due, policy: make_application(
        invoices=[{"number": n, "amount": amount, "due_date": due} for n in numbers],
        requested_amount=asked,
        policy_no=policy,
    ),
    numbers=st.lists(st.sampled_from(HX), min_size=1, max_size=3, unique=True),
    amount=st.sampled_from(["6000.00", "60000.00", "200000.00", "450000.00"]),
    asked=st.sampled_from(["5000.00", "40000.00", "80000.00"]),
    due=st.sampled_from(["2027-01-09", "2027-02-28", "2027-06-30"]),
    policy=st.sampled_from(["SIN-2026-0001", "SIN-2026-0001", "SIN-2099-9999"]),
)
dongfang = st.builds(
    lambda amount, asked: dongfang_application(amount=amount, requested_amount=asked),
    amount=st.sampled_from(["12000.00", "100000.00", "350000.00"]),
    asked=st.sampled_from(["9000.00", "70000.00"]),
)


def workflows(make_workflow):
    return [make_workflow(fakeredis.FakeRedis(server=fakeredis.FakeServer(),
                                              decode_responses=True)) for _ in range(3)]


@pytest.fixture
def fixed_id(monkeypatch):
    monkeypatch.setattr(intake, "new_deal_id", lambda: DEAL_ID)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(app=st.one_of(haixin, dongfang), taken=st.sampled_from([None, "60000.00", "300000.00"]))
def test_chained_and_batched_verify_write_what_the_moves_one_by_one_write(
    make_workflow, fixed_id, app, taken
):
    results = []
    for way in ("alone", "chained", "batch"):
        wf = workflows(make_workflow)[0]
        if taken:  # another deal of Haixin's holds part of the DE limit already
            other = make_application(number="INV-HX-1020", amount=taken,
                                     requested_amount="20000.00")
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(intake, "new_deal_id", lambda: "20261126-OTHER0001")
                wf.verify(wf.submit(other).deal.id)
        deal = wf.submit(app).deal
        if way == "alone":
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(intake, "Chain", lambda _deal: None)
                wf.verify(deal.id)
        elif way == "chained":
            wf.verify(deal.id)
        else:
            for deal_id, _ in wf.verify_many([(deal.id, None)]):
                wf.verify(deal_id)
        final = wf.store.get(deal.id)
        results.append((final.state, final.fields, keyspace(wf.store.redis, deal.id)))
    alone, chained, batch = results
    event(f"{alone[0]} {alone[1].get('reasons', '')}")
    assert alone[0] in (State.PENDING_BANK, State.REJECTED, State.UNPLACED)
    assert chained == alone
    assert batch == alone
