"""Withdrawals and approval cancellations (workflow.withdrawal) against what lands between
their read and their write: the other move wins or the request goes on from where it is; a
refusal writes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import DE_EXPOSURE, DONGFANG, HAIXIN, make_application
from tests.recompute import event_log_problems, read_deals
from workflow import keys
from workflow.errors import AlreadyApproved, DealNotFound, WrongState
from workflow.pipeline import Decision
from workflow.servicing import Disbursement
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def everything(wf) -> dict:
    r = wf.store.redis
    return {k: r.dump(k) for k in sorted(r.keys("*"))}


def after_first_read(wf, monkeypatch, act):
    """Run ``act`` once, right after the next ``store.get`` has read the deal."""
    real_get = wf.store.get
    done = []

    def get(deal_id):
        deal = real_get(deal_id)
        if not done:
            done.append(True)
            act()
        return deal

    monkeypatch.setattr(wf.store, "get", get)


def placed(wf):
    return wf.verify(wf.submit(make_application()).deal.id)


def assert_log_chains(wf, deal_id):
    deals, logs = read_deals(wf.store.redis, [deal_id])
    assert not event_log_problems(deal_id, deals[deal_id], logs[deal_id])


def test_a_withdrawal_racing_the_approval_is_refused_and_writes_nothing(wf, monkeypatch):
    deal = placed(wf)
    after_first_read(wf, monkeypatch,
                     lambda: wf.decide(deal.id, "BOC-NB", Decision(True, "officer-1")))
    with pytest.raises(AlreadyApproved):
        wf.withdraw(deal.id, HAIXIN, "changed our mind")
    monkeypatch.undo()
    approved = wf.store.get(deal.id)
    assert approved.state == State.APPROVED
    assert wf.store.events(deal.id)[-1]["type"] == "approved"
    assert wf.store.reserved_cents(DE_EXPOSURE) > 0
    assert_log_chains(wf, deal.id)


def test_a_withdrawal_racing_the_verification_withdraws_what_was_verified(wf, monkeypatch):
    deal = wf.submit(make_application()).deal
    after_first_read(wf, monkeypatch, lambda: wf.verify(deal.id))
    withdrawn = wf.withdraw(deal.id, HAIXIN)
    monkeypatch.undo()
    assert withdrawn.state == State.WITHDRAWN
    r = wf.store.redis
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert [e["type"] for e in wf.store.events(deal.id)].count("withdrawn") == 1
    assert_log_chains(wf, deal.id)


def test_a_withdrawal_racing_the_deadline_sweep_withdraws_from_the_next_bank(wf, monkeypatch):
    deal = placed(wf)
    first_bank = deal.bank_id
    wf.clock.advance(days=30)
    after_first_read(wf, monkeypatch, lambda: wf.expire_deadlines())
    withdrawn = wf.withdraw(deal.id, HAIXIN)
    monkeypatch.undo()
    assert withdrawn.state == State.WITHDRAWN
    r = wf.store.redis
    for bank in {first_bank, withdrawn.bank_id} - {None}:
        assert r.zscore(keys.bank_queue(bank), deal.id) is None
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert_log_chains(wf, deal.id)


def test_a_cancellation_racing_the_disbursement_is_refused_and_writes_nothing(wf, monkeypatch):
    deal = wf.decide(placed(wf).id, "BOC-NB", Decision(True, "officer-1"))
    payout = Disbursement("officer-1", deal.decimal("approved_amount"), wf.today(), "PAY-1")
    after_first_read(wf, monkeypatch, lambda: wf.disburse(deal.id, "BOC-NB", payout))
    with pytest.raises(WrongState):
        wf.cancel_approval(deal.id, "BOC-NB", "officer-2", "credit review")
    monkeypatch.undo()
    assert wf.store.get(deal.id).state == State.DISBURSED
    before = everything(wf)
    with pytest.raises(WrongState):
        wf.cancel_approval(deal.id, "BOC-NB", "officer-2", "credit review")
    assert everything(wf) == before
    assert_log_chains(wf, deal.id)


def test_another_exporter_or_bank_is_refused_and_nothing_is_written(wf):
    pending = placed(wf)
    approved = wf.decide(wf.verify(wf.submit(make_application(number="INV-HX-1002")).deal.id).id,
                         "BOC-NB", Decision(True, "officer-1"))
    before = everything(wf)
    for deal in (pending, approved):
        with pytest.raises(DealNotFound):
            wf.withdraw(deal.id, DONGFANG)
        with pytest.raises((DealNotFound, WrongState)):
            wf.cancel_approval(deal.id, "ICBC-NB", "o", "not ours")
    with pytest.raises(WrongState):
        wf.cancel_approval(pending.id, "BOC-NB", "o", "not approved yet")
    assert everything(wf) == before
