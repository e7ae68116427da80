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


def test_a_grace_that_reaches_the_notice_deadline_is_refused_at_load():
    """A notice follows the overdue, which comes only after the grace: with grace >= notice
    days a bank could never file in time, so the reference file is refused (was: accepted,
    and the prompt bank's notice counted late)."""
    import json

    from tests.conftest import demo_text
    from workflow.reference import ReferenceFileError, parse_reference

    doc = json.loads(demo_text(), parse_float=Decimal)
    doc["policies"][0].update(grace_days=30, notice_days=30)
    with pytest.raises(ReferenceFileError) as refused:
        parse_reference(doc)
    assert "grace_days" in str(refused.value)
    doc["policies"][0].update(grace_days=29)
    parse_reference(doc)


def test_with_a_grace_a_prompt_notice_is_in_time(wf):
    policy_terms(wf, "SIN-2026-0001", grace_days=29, notice_days=30)
    deal = disbursed(wf)
    to_day(wf, DUE + timedelta(days=20))  # unpaid, within grace: the notice is refused
    with pytest.raises(WrongState):
        wf.file_notice(deal.id, BOC, "wang")
    to_day(wf, DUE + timedelta(days=30))  # the first day the sweep moves it
    wf.sweep_arrears()
    assert wf.store.get(deal.id).state == State.OVERDUE
    noticed = wf.file_notice(deal.id, BOC, "wang")
    assert noticed.fields["notice_late_days"] == "0"
