"""A buyer exposure under ambiguous or changing insurer data: which limit caps it, and what an
approval needs of the cover the deal was verified against."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conftest import DE_EXPOSURE, demo_text, make_application
from workflow.pipeline import Decision, WorkflowError
from workflow.reference import parse_reference, store_reference
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def _demo(section: str) -> list[dict]:
    return json.loads(demo_text(), parse_float=Decimal)[section]


def _reload(wf, **sections: list[dict]) -> None:
    store_reference(wf.store.redis, parse_reference(sections))


def placed(wf, number: str, amount: str = "100000.00", currency: str = "USD"):
    app = make_application(
        number=number, amount=amount, requested_amount="50000.00", currency=currency
    )
    return wf.verify(wf.submit(app).deal.id)


# --- which limit caps an exposure --------------------------------------------------------------


def _two_limits(first_id: str, first_amount: str, second_id: str, second_amount: str):
    base = _demo("limits")[0]  # LIM-HX-DE0001: SIN-2026-0001 / DE-0001 / USD
    return [
        {**base, "limit_id": first_id, "amount": first_amount},
        {**base, "limit_id": second_id, "amount": second_amount},
        *_demo("limits")[1:],
    ]


@pytest.mark.parametrize(
    "ids",
    [("LIM-A", "LIM-B"), ("LIM-B", "LIM-A")],
    ids=["small-limit-sorts-first", "big-limit-sorts-first"],
)
def test_the_cap_of_an_exposure_with_two_limits_does_not_depend_on_their_ids(wf, ids):
    """Two in-force limits for one (policy, buyer, currency): the smaller caps the exposure,
    whatever their ids."""
    small_id, big_id = ids
    _reload(wf, limits=_two_limits(small_id, "150000.00", big_id, "1000000.00"))
    deals = [placed(wf, f"INV-HX-100{i + 1}") for i in range(3)]  # 3 x 100,000 on one exposure
    states = [d.state for d in deals]
    reserved = wf.store.reserved_cents(DE_EXPOSURE)
    assert reserved <= 15_000_000, (states, reserved)



def test_a_usd_deal_cannot_be_approved_on_a_limit_now_in_eur(wf):
    """The limit the USD deal was verified on is now in EUR: no longer its cover."""
    deal = placed(wf, "INV-HX-1001")
    assert deal.state == State.PENDING_BANK
    limits = _demo("limits")
    limits[0]["currency"] = "EUR"
    _reload(wf, limits=limits)
    with pytest.raises(WorkflowError):
        wf.decide(deal.id, deal.bank_id, Decision(True, "wang"))
    assert wf.store.get(deal.id).state == State.PENDING_BANK


# --- a limit re-issued under a new id -----------------------------------------------------------


def test_a_limit_reissued_under_a_new_id_still_lets_the_bank_approve(wf):
    """A limit re-issued for the same exposure still covers the deal."""
    deal = placed(wf, "INV-HX-1001")
    assert deal.state == State.PENDING_BANK
    limits = _demo("limits")
    limits[0]["limit_id"] = "LIM-HX-DE0001-R1"
    _reload(wf, limits=limits)
    approved = wf.decide(deal.id, deal.bank_id, Decision(True, "wang"))
    assert approved.state == State.APPROVED


# --- the policy withdrawn between verification and approval ----------------------------------


@pytest.mark.parametrize("status", ["cancelled", "suspended"])
def test_a_bank_cannot_approve_once_the_policy_is_withdrawn(wf, status):
    """With the policy cancelled or suspended nothing is insured: no approval."""
    deal = placed(wf, "INV-HX-1001")
    assert deal.state == State.PENDING_BANK
    policies = _demo("policies")
    policies[0]["status"] = status
    _reload(wf, policies=policies)
    with pytest.raises(WorkflowError):
        wf.decide(deal.id, deal.bank_id, Decision(True, "wang"))
    assert wf.store.get(deal.id).state == State.PENDING_BANK
