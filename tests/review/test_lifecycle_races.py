"""Review: servicing steps repeated at the same moment (a double click, a client retry racing
the first request) must be the same step, not a 409."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.workflow.test_arrears import disbursed, to_day
from tests.workflow.test_servicing import BOC, DUE, approved, payout
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def racing(wf, monkeypatch, first):
    """Let ``first`` (the other click) land between the step's read and its write."""
    real = wf.store.transition
    fired = []

    def transition(*args, **kwargs):
        if not fired:
            fired.append(True)
            monkeypatch.setattr(wf.store, "transition", real)
            first()
        return real(*args, **kwargs)

    monkeypatch.setattr(wf.store, "transition", transition)


def test_double_click_disbursement_same_reference_is_the_same_one(wf, monkeypatch):
    deal = approved(wf)
    racing(wf, monkeypatch, lambda: wf.disburse(deal.id, BOC, payout()))
    # The same reference and amount is "the same disbursement (a retry or a double click)".
    again = wf.disburse(deal.id, BOC, payout())
    assert again.state == State.DISBURSED


def overdue(wf):
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=10))
    wf.sweep_arrears()
    return deal


def test_double_click_notice_is_the_same_notice(wf, monkeypatch):
    deal = overdue(wf)
    racing(wf, monkeypatch, lambda: wf.file_notice(deal.id, BOC, "wang"))
    assert wf.file_notice(deal.id, BOC, "wang").fields["notice_filed_at"]


def test_double_click_claim_is_the_same_claim(wf, monkeypatch):
    deal = overdue(wf)
    wf.file_notice(deal.id, BOC, "wang")
    docs = ["policy", "invoice"]
    loss = Decimal("100000.00")
    racing(wf, monkeypatch, lambda: wf.file_claim(deal.id, BOC, "wang", loss, docs))
    assert wf.file_claim(deal.id, BOC, "wang", loss, docs).state == State.CLAIM_FILED
