"""Review 12: with a remote insurer, verify() commits the claim, asks the insurer, then commits
the verdict and the offer as one chain. When another deal takes the buyer limit's room while
the insurer answers, the chain is refused (LimitExhausted) and verify() ran the whole check
again, move by move: a second call to the insurer for an answer it already had. Before the
chain the rejection (LIMIT_INSUFFICIENT, with the room left) was decided on the first answer;
with the insurer gone by then, the deal was instead retried and put on hold."""

from __future__ import annotations

import pytest

from tests.conftest import make_application
from workflow import keys
from workflow.gateway import InsurerUnavailable
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def remote_insurer(wf, monkeypatch, on_ask):
    """Make ``wf``'s insurer a remote one (no answers from the reference data) that answers
    as the local one does, after calling ``on_ask(number)`` for the first invoice's number."""
    local = wf.insurer.cover_facts_at
    asked: list[str] = []

    def cover_facts(app):
        number = app.invoices[0].number
        asked.append(number)
        on_ask(number, asked.count(number))
        view = wf._reference_at(wf.store.redis.get(keys.reference_version()))
        return local(app, view)

    monkeypatch.setattr(wf.insurer, "cover_facts_at", None)
    monkeypatch.setattr(wf.insurer, "cover_facts", cover_facts)
    return asked


def test_a_limit_taken_while_the_insurer_answers_rejects_on_that_answer(wf, monkeypatch):
    big = wf.submit(make_application(amount="450000.00", requested_amount="300000.00")).deal
    small = wf.submit(make_application(number="INV-HX-1002", amount="60000.00",
                                       requested_amount="40000.00")).deal

    def on_ask(number, times):
        if number != "INV-HX-1002":
            return
        if times > 1:
            raise InsurerUnavailable("the insurer is gone by now")
        assert wf.verify(big.id).state == State.PENDING_BANK  # takes 450,000 of 500,000

    asked = remote_insurer(wf, monkeypatch, on_ask)
    small = wf.verify(small.id)
    assert asked.count("INV-HX-1002") == 1
    assert small.state == State.REJECTED
    assert small.get("reasons") == ["LIMIT_INSUFFICIENT"]
    assert small.get("failures")[0]["available"] == "50000.00"
    assert [e["type"] for e in wf.store.events(small.id)] == [
        "submitted", "verification_started", "rejected"]


def test_a_deal_moved_meanwhile_is_checked_again_with_a_new_answer(wf, monkeypatch):
    # Only the refused limit reuses the answer: a deal another step moved is re-read and,
    # if it still needs a check, asked about again (as before the chain).
    deal = wf.submit(make_application()).deal

    def on_ask(number, times):
        if times == 1:
            wf.hold(deal.id)  # e.g. another worker parked it: the chain conflicts
            wf.clock.advance(seconds=61)  # and its hold is over when verify() re-reads

    asked = remote_insurer(wf, monkeypatch, on_ask)
    assert wf.verify(deal.id).state == State.PENDING_BANK
    assert asked == ["INV-HX-1001", "INV-HX-1001"]
