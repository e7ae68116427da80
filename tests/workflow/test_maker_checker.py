"""Maker-checker: large approvals need a second, different officer with the checker role."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import make_application
from workflow import keys
from workflow.errors import CHECKER_ROLE_REQUIRED, SAME_OFFICER, MakerCheckerRefused
from workflow.pipeline import Decision, InvalidDecision, WrongState
from workflow.states import State
from workflow.visibility import as_seen_by_bank

BOC = "BOC-NB"  # demo: second_approval_above 150,000.00


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def pending(wf, requested: str = "320000.00"):
    app = make_application(amount="400000.00", requested_amount=requested)
    deal = wf.verify(wf.submit(app).deal.id)
    assert deal.state == State.PENDING_BANK and deal.bank_id == BOC, deal.fields
    return deal


def approve(officer: str, may_check: bool = False, **terms) -> Decision:
    return Decision(approve=True, officer=officer, may_check=may_check, **terms)


def members(wf, key: str) -> list[str]:
    return [m if isinstance(m, str) else m.decode() for m in wf.store.redis.zrange(key, 0, -1)]


def test_below_the_threshold_one_officer_approves(wf):
    deal = pending(wf, requested="149999.99")
    approved = wf.decide(deal.id, BOC, approve("wang"))
    assert approved.state == State.APPROVED
    assert "checker" not in approved.get("decision")


def test_at_the_threshold_the_first_approval_waits_for_a_checker(wf):
    deal = pending(wf)
    first = wf.decide(deal.id, BOC, approve("wang", amount=Decimal("150000.00")))
    assert first.state == State.PENDING_BANK
    assert first.get("first_approval")["officer"] == "wang"
    assert first.get("first_approval")["amount"] == "150000.00"
    assert members(wf, keys.awaiting_check(BOC)) == [deal.id]
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == [deal.id]
    # Still in the bank's queue under the same deadline: the check is part of the decision.
    assert members(wf, keys.bank_queue(BOC)) == [deal.id]
    assert wf.store.events(deal.id)[-1]["type"] == "first_approval"

    checked = wf.decide(deal.id, BOC, approve("zhao", may_check=True))
    assert checked.state == State.APPROVED
    assert checked.decimal("approved_amount") == Decimal("150000.00")
    record = checked.get("decision")
    assert (record["officer"], record["checker"]) == ("wang", "zhao")
    assert checked.get("first_approval") is None
    assert members(wf, keys.awaiting_check(BOC)) == []
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == []


def test_the_maker_can_never_check_their_own_approval(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang", may_check=True))
    with pytest.raises(MakerCheckerRefused) as refused:
        wf.decide(deal.id, BOC, approve("wang", may_check=True))
    assert refused.value.code == SAME_OFFICER
    assert wf.store.get(deal.id).state == State.PENDING_BANK


def test_an_officer_without_the_checker_role_cannot_check(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    with pytest.raises(MakerCheckerRefused) as refused:
        wf.decide(deal.id, BOC, approve("li", may_check=False))
    assert refused.value.code == CHECKER_ROLE_REQUIRED
    assert wf.store.get(deal.id).state == State.PENDING_BANK


def test_the_checker_confirms_the_makers_terms_and_cannot_change_them(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang", amount=Decimal("310000.00")))
    with pytest.raises(InvalidDecision) as refused:
        wf.decide(deal.id, BOC, approve("zhao", True, amount=Decimal("320000.00")))
    assert refused.value.field == "amount"
    with pytest.raises(InvalidDecision):
        wf.decide(deal.id, BOC, approve("zhao", True, annual_rate=Decimal("0.01")))
    same = wf.decide(deal.id, BOC, approve("zhao", True, amount=Decimal("310000.00")))
    assert same.state == State.APPROVED and same.decimal("approved_amount") == Decimal("310000")


def test_a_decline_while_awaiting_the_check_clears_the_first_approval(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    declined = wf.decide(deal.id, BOC, Decision(approve=False, officer="zhao", reason="no"))
    assert declined.state in (State.ROUTING, State.PENDING_BANK)
    after = wf.store.get(deal.id)
    assert after.get("first_approval") is None
    assert members(wf, keys.awaiting_check(BOC)) == []
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == []


def test_a_missed_deadline_clears_the_first_approval_before_the_next_bank(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    wf.clock.advance(hours=25)
    wf.expire_deadlines()
    moved = wf.route(deal.id)
    assert moved.bank_id != BOC
    assert moved.get("first_approval") is None
    assert members(wf, keys.awaiting_check(BOC)) == []
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == []
    with pytest.raises(WrongState):
        wf.decide(deal.id, BOC, approve("zhao", True))
    # The next bank does not read the previous bank's internal steps; BOC still reads its own.
    _, seen = as_seen_by_bank(moved, wf.store.events(deal.id), moved.bank_id)
    assert "first_approval" not in [e["type"] for e in seen]
    _, own = as_seen_by_bank(moved, wf.store.events(deal.id), BOC)
    assert "first_approval" in [e["type"] for e in own]


def test_officer_names_compare_as_logins_do(wf):
    """A username in other case or with spaces is the same officer: no self-check that way."""
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("Wang.Li ", may_check=True))
    for alias in ("wang.li", " WANG.LI", "Wang.Li"):
        with pytest.raises(MakerCheckerRefused):
            wf.decide(deal.id, BOC, approve(alias, may_check=True))
    assert members(wf, keys.first_approvals_by(BOC, "wang.li")) == [deal.id]


def test_an_exporter_withdrawal_clears_the_check_indexes(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    wf.withdraw(deal.id, deal.fields["exporter_uscc"])
    assert members(wf, keys.awaiting_check(BOC)) == []
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == []


def test_send_back_by_a_checker_or_recall_by_the_maker(wf):
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    with pytest.raises(MakerCheckerRefused):
        wf.return_approval(deal.id, BOC, "li", may_check=False, reason="not mine")
    back = wf.return_approval(deal.id, BOC, "zhao", may_check=True, reason="rate too low")
    assert back.state == State.PENDING_BANK and back.get("first_approval") is None
    assert back.get("returned_approval")["returned_by"] == "zhao"
    assert members(wf, keys.awaiting_check(BOC)) == []
    with pytest.raises(WrongState):
        wf.return_approval(deal.id, BOC, "zhao", may_check=True, reason="again")
    # A new first approval, then the maker recalls it.
    wf.decide(deal.id, BOC, approve("wang"))
    wf.return_approval(deal.id, BOC, "wang", may_check=False, reason="typo")
    assert members(wf, keys.first_approvals_by(BOC, "wang")) == []
    # The deal can still be approved in full afterwards.
    wf.decide(deal.id, BOC, approve("li"))
    assert wf.decide(deal.id, BOC, approve("zhao", True)).state == State.APPROVED


def test_a_stale_check_after_the_maker_recalled_changes_nothing(wf, monkeypatch):
    """The checker's page was read with wang's first approval; wang recalls and approves a
    lower amount meanwhile: the stale confirmation must not approve the old terms."""
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    stale = wf.store.get(deal.id)
    wf.return_approval(deal.id, BOC, "wang", may_check=False, reason="too much")
    wf.decide(deal.id, BOC, approve("wang", amount=Decimal("305000.00")))
    real_get = wf.store.get

    def stale_once(deal_id):
        monkeypatch.setattr(wf.store, "get", real_get)
        return stale

    monkeypatch.setattr(wf.store, "get", stale_once)
    with pytest.raises(WrongState):
        wf.decide(deal.id, BOC, approve("zhao", True))
    now = wf.store.get(deal.id)
    assert now.state == State.PENDING_BANK
    assert now.get("first_approval")["amount"] == "305000.00"


def test_the_first_approval_keeps_the_offer_visible_to_the_bank(wf):
    """A same-state event must not read as the end of the bank's offer."""
    deal = pending(wf)
    wf.decide(deal.id, BOC, approve("wang"))
    seen, events = as_seen_by_bank(wf.store.get(deal.id), wf.store.events(deal.id), BOC)
    assert seen.get("first_approval")["officer"] == "wang"
    assert events[-1]["type"] == "first_approval"
