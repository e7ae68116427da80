"""Review of issue 9: the HTTP adapter took any number the insurer sent as money or as a share.

A limit of "Infinity", "NaN" or 1e30 made verification raise InvalidOperation (the deal looped
through the stranded sweep instead of going on hold); a coverage ratio of 5 financed five times
the cover and one of -1 refused the deal (NO_ELIGIBLE_BANK); a claim decision with a NaN,
negative or larger-than-the-loss indemnity was recorded and ended the deal. The local reference
file refuses all of these; an insurer answer carrying one is no answer (InsurerUnavailable).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from insurer_sim.book import Book, cover_wire, declaration_wire, policy_wire
from tests.conftest import DEMO_TODAY, make_application
from workflow.claim_rules import ClaimFiling
from workflow.gateway import InsurerUnavailable
from workflow.insurer_http import HttpInsurer, HttpInsurerConfig


@pytest.fixture
def book(demo_reference) -> Book:
    return Book.of(demo_reference)


def insurer(
    book: Book, *, policy: dict | None = None, cover: dict | None = None,
    decision: dict | None = None,
) -> HttpInsurer:
    """An adapter over a fake insurer answering from the demo book, with fields overridden."""
    app = make_application()
    found_policy = policy_wire(book.policies[app.policy_no])
    found_covers = [cover_wire(lim) for lim in book.covers(app.policy_no, app.buyer.code)]

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/auth/login":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if path.endswith("/cover"):
            covers = [{**c, **(cover or {})} for c in found_covers]
            return httpx.Response(200, json={"covers": covers})
        if path.endswith("/declarations"):
            wanted = request.url.params.get_list("invoices")
            found = [declaration_wire(n, book.declarations.get((app.policy_no, app.buyer.code, n)))
                     for n in wanted]
            return httpx.Response(200, json={"declarations": found})
        if path.endswith("/overdues"):
            return httpx.Response(200, json={"overdues": []})
        if path.endswith("/claims") and request.method == "POST":
            return httpx.Response(202, json={"jobId": "J1"})
        if path == "/v1/jobs/J1":
            result = {"claimId": "C1"}
            return httpx.Response(200, json={"status": "processed", "result": result})
        if path == "/v1/claims/C1":
            return httpx.Response(200, json={"claimId": "C1", **(decision or {})})
        if path.startswith("/v1/policies/"):
            return httpx.Response(200, json={**found_policy, **(policy or {})})
        return httpx.Response(404, json={"error": "not found"})

    config = HttpInsurerConfig("http://insurer.test", "key", job_poll_s=0.0, attempts=1)
    return HttpInsurer(config, transport=httpx.MockTransport(answer))


def test_the_fake_insurer_answers_like_the_book(book) -> None:
    facts = insurer(book).cover_facts(make_application())
    assert facts.policy is not None and facts.limits


@pytest.mark.parametrize("amount", ["Infinity", "NaN", "-1", "1e30", "-0.01", 1.5, True])
def test_a_limit_amount_that_is_no_money_is_no_answer(book, amount: Any) -> None:
    with pytest.raises(InsurerUnavailable):
        insurer(book, cover={"amount": amount}).cover_facts(make_application())


@pytest.mark.parametrize("ratio", ["5", "1.01", "0", "-1", "NaN", "Infinity", 0.9])
def test_a_coverage_ratio_outside_0_to_1_is_no_answer(book, ratio: Any) -> None:
    with pytest.raises(InsurerUnavailable):
        insurer(book, policy={"coverageRatio": ratio}).cover_facts(make_application())


FILING = ClaimFiling(
    deal_id="d1", policy_no="SIN-2026-0001", buyer_code="DE-0001", currency="USD",
    loss_amount=Decimal("80000.00"), documents=("invoice",), filed_on=DEMO_TODAY,
    notice_filed_on=DEMO_TODAY, notice_deadline=date(2027, 6, 1),
    claim_deadline=date(2027, 9, 1), coverage_ratio=Decimal("0.9"),
    insured_cap=Decimal("100000.00"),
)


@pytest.mark.parametrize(
    ("covered", "indemnity"),
    [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("80000.00", "-50.00"),  # a negative indemnity
        ("80000.00", "90000.00"),  # more than the covered loss
        ("1000000.00", "900000.00"),  # a covered loss above the loss claimed
        (80000.0, 72000.0),  # money as floats
    ],
)
def test_a_claim_decision_with_impossible_amounts_is_no_answer(book, covered, indemnity) -> None:
    decision = {"decision": "approved", "coveredLoss": covered, "indemnity": indemnity}
    with pytest.raises(InsurerUnavailable):
        insurer(book, decision=decision).decide_claim(FILING)


def test_a_sound_claim_decision_still_reads(book) -> None:
    decision = {"decision": "partial", "coveredLoss": "80000.00", "indemnity": "72000.00",
                "reasons": ["X"]}
    got = insurer(book, decision=decision).decide_claim(FILING)
    assert got is not None and got.paid and got.indemnity == Decimal("72000.00")


def test_verification_with_an_infinite_limit_goes_on_hold_not_a_crash(
    book, fake_redis, demo_reference, settings
) -> None:
    from tests.conftest import Clock
    from workflow.pipeline import Workflow
    from workflow.reference import ReferenceRepository, store_reference
    from workflow.store import DealStore

    store_reference(fake_redis, demo_reference)
    flow = Workflow(DealStore(fake_redis), ReferenceRepository(fake_redis),
                    insurer(book, cover={"amount": "Infinity"}), settings, clock=Clock())
    deal = flow.submit(make_application()).deal
    with pytest.raises(InsurerUnavailable):  # the task retries, then holds (tasks.pipeline)
        flow.verify(deal.id)
    assert flow.hold(deal.id).state == "on_hold"

