"""POST /decision and /withdraw: banks decide on their deals, exporters withdraw theirs."""

from __future__ import annotations

import pytest

from tests.conftest import DE_EXPOSURE, GB_EXPOSURE
from tests.web.conftest import HAIXIN, auth, deal_body, dongfang_body, error_of
from workflow import keys
from workflow.store import DealStore

LIMIT = DE_EXPOSURE  # limit LIM-HX-DE0001


def _url(deal_id: str, action: str) -> str:
    return f"/api/v1/deals/{deal_id}/{action}"


# --- approve ----------------------------------------------------------------------------------


def test_approve_within_the_eligible_amount(api, fake_redis):
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="approve", amount="75000.00",
                    annual_rate="0.0400", officer="wang")
    assert rv.status_code == 200
    seen = rv.get_json()
    assert seen["state"] == "approved"
    assert seen["version"] == deal["version"] + 1
    assert seen["amounts"]["approved"] == "75000.00"
    assert seen["decision"] == {"bank_id": "BOC-NB", "officer": "wang", "decision": "approve",
                                "amount": "75000.00", "annual_rate": "0.0400"}
    assert DealStore(fake_redis).get(deal["id"]).state == "approved"
    # Out of the bank's work queue; the limit stays reserved for the approved deal.
    assert fake_redis.zcard(keys.bank_queue("BOC-NB")) == 0
    assert DealStore(fake_redis).reserved_cents(LIMIT) == 10_000_000
    assert api.get(deal["id"]).get_json()["amounts"]["approved"] == "75000.00"


def test_approve_without_amount_takes_the_eligible_amount(api):
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="approve")
    assert rv.status_code == 200
    assert rv.get_json()["amounts"]["approved"] == "80000.00"


def test_approve_exactly_the_eligible_amount(api):
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="approve", amount="80000.00")
    assert rv.status_code == 200


def test_approve_above_the_eligible_amount_is_422(api, fake_redis):
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="approve", amount="80000.01")
    error = error_of(rv, 422)
    assert "amount" in error["fields"]
    assert DealStore(fake_redis).get(deal["id"]).state == "pending_bank"


@pytest.mark.parametrize(("body", "field"), [
    ({"decision": "approve", "amount": 70000}, "amount"),
    ({"decision": "approve", "amount": "0.00"}, "amount"),
    ({"decision": "approve", "amount": "70000.001"}, "amount"),
    ({"decision": "approve", "annual_rate": 0.04}, "annual_rate"),
    ({"decision": "approve", "annual_rate": "1.5"}, "annual_rate"),
    ({"decision": "maybe"}, "decision"),
    ({}, "decision"),
    ({"decision": "decline"}, "reason"),
    ({"decision": "decline", "reason": ""}, "reason"),
    ({"decision": "decline", "reason": "   "}, "reason"),
    ({"decision": "decline", "reason": "no\x00"}, "reason"),
    ({"decision": "approve", "annual_rate": "0.04\n"}, "annual_rate"),
    ({"decision": "approve", "officer": " "}, "officer"),
    ({"decision": "decline", "reason": "x", "amount": "1.00"}, "amount"),
])
def test_invalid_decisions_are_422(api, fake_redis, body, field):
    deal = api.create()
    rv = api.client.post(_url(deal["id"], "decision"), json=body, headers=auth("boc"))
    error = error_of(rv, 422, "VALIDATION_FAILED")
    assert field in error["fields"], error
    assert DealStore(fake_redis).get(deal["id"]).version == deal["version"]


def test_decision_body_must_be_json(api):
    deal = api.create()
    url = _url(deal["id"], "decision")
    error_of(api.client.post(url, data="decision=approve", headers=auth("boc"),
                             content_type="application/x-www-form-urlencoded"), 415)
    error_of(api.client.post(url, data="{", headers=auth("boc"),
                             content_type="application/json"), 400, "MALFORMED_JSON")
    error_of(api.client.post(url, json=["approve"], headers=auth("boc")), 422)


def test_approve_on_an_approved_deal_is_409(api):
    deal = api.create()
    assert api.decide(deal["id"], "boc", decision="approve").status_code == 200
    error = error_of(api.decide(deal["id"], "boc", decision="approve"), 409, "INVALID_STATE")
    assert "approved" in error["message"]


# --- decline ----------------------------------------------------------------------------------


def test_decline_goes_to_the_next_bank(api, fake_redis):
    deal = api.create()
    rv = api.decide(deal["id"], "boc", decision="decline", reason="sector limit reached")
    assert rv.status_code == 200
    # The response is the deal as the decision left it; the eager route task moves it on.
    assert rv.get_json()["state"] == "routing"
    now = api.get(deal["id"]).get_json()
    assert now["state"] == "pending_bank"
    assert now["bank"]["bank_id"] == "ICBC-NB"
    assert now["offered_banks"] == ["BOC-NB", "ICBC-NB"]
    assert now["decision"]["decision"] == "decline"
    assert now["decision"]["reason"] == "sector limit reached"
    assert fake_redis.zrange(keys.bank_queue("BOC-NB"), 0, -1) == []
    assert fake_redis.zrange(keys.bank_queue("ICBC-NB"), 0, -1) == [deal["id"]]
    # ICBC advances 85% of the insured 90,000: 76,500 at most.
    assert now["amounts"]["eligible"] == "76500.00"
    rv = api.decide(deal["id"], "icbc", decision="approve", amount="76500.01")
    assert "amount" in error_of(rv, 422)["fields"]
    rv = api.decide(deal["id"], "icbc", decision="approve", amount="76500.00")
    assert rv.status_code == 200
    assert rv.get_json()["amounts"]["approved"] == "76500.00"


def test_a_second_decline_from_the_same_bank_is_409(api):
    deal = api.create()
    first = api.decide(deal["id"], "boc", decision="decline", reason="no")
    assert first.status_code == 200
    error_of(api.decide(deal["id"], "boc", decision="decline", reason="no"), 409,
             "INVALID_STATE")
    # The stale click changed nothing: ICBC still holds the deal.
    now = api.get(deal["id"]).get_json()
    assert now["bank"]["bank_id"] == "ICBC-NB"
    assert now["offered_banks"] == ["BOC-NB", "ICBC-NB"]


def test_every_bank_declines_and_the_deal_is_unplaced(api, fake_redis):
    deal = api.create()
    for who in ("boc", "icbc", "ccb"):
        assert api.decide(deal["id"], who, decision="decline", reason="no").status_code == 200
    now = api.get(deal["id"]).get_json()
    assert now["state"] == "unplaced"
    assert now["reasons"] == ["NO_ELIGIBLE_BANK"]
    assert now["offered_banks"] == ["BOC-NB", "ICBC-NB", "CCB-NB"]
    store = DealStore(fake_redis)
    assert store.reserved_cents(LIMIT) == 0
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") is None


def test_a_bank_never_offered_gets_404(api):
    deal = api.create()
    error_of(api.decide(deal["id"], "ccb", decision="approve"), 404, "NOT_FOUND")
    error_of(api.decide(deal["id"], "icbc", decision="decline", reason="x"), 404, "NOT_FOUND")
    error_of(api.decide("0" * 20, "boc", decision="approve"), 404, "NOT_FOUND")
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


def test_an_exporter_may_not_decide(api):
    deal = api.create()
    error_of(api.decide(deal["id"], "haixin", decision="approve"), 403, "FORBIDDEN")
    rv = api.client.post(_url(deal["id"], "decision"), json={"decision": "approve"})
    error_of(rv, 401, "UNAUTHENTICATED")
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


# --- withdraw ---------------------------------------------------------------------------------


def test_owner_withdraws_and_everything_is_released(api, fake_redis):
    deal = api.create(deal_body("INV-HX-1001", "INV-HX-1002", requested_amount="150000.00"))
    store = DealStore(fake_redis)
    assert store.reserved_cents(LIMIT) == 20_000_000
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1002") == deal["id"]

    rv = api.withdraw(deal["id"])
    assert rv.status_code == 200
    seen = rv.get_json()
    assert seen["state"] == "withdrawn"
    assert seen["reasons"] == ["WITHDRAWN_BY_EXPORTER"]
    assert seen["bank"] is None or seen["bank"]["deadline"] is None

    assert store.get(deal["id"]).state == "withdrawn"
    assert store.reserved_cents(LIMIT) == 0
    assert fake_redis.hgetall(keys.exposure_reservations(LIMIT)) == {}
    for number in ("INV-HX-1001", "INV-HX-1002"):
        assert store.receivable_holder(HAIXIN, "DE-0001", number) is None
    # Gone from the bank's queue and from the deadline sweep.
    assert fake_redis.zcard(keys.bank_queue("BOC-NB")) == 0
    assert fake_redis.zscore(keys.deadlines(), deal["id"]) is None
    assert api.list("boc", state="pending_bank").get_json()["total"] == 0
    assert api.events(deal["id"]).get_json()["events"][-1]["type"] == "withdrawn"
    # The bank that held it sees it withdrawn and can no longer decide.
    error_of(api.decide(deal["id"], "boc", decision="approve"), 409, "INVALID_STATE")


def test_withdraw_with_a_reason_body(api):
    deal = api.create()
    rv = api.withdraw(deal["id"], json={"reason": "buyer paid early"})
    assert rv.status_code == 200
    assert rv.get_json()["state"] == "withdrawn"
    events = api.client.get(f"/api/v1/deals/{deal['id']}/events", headers=auth("haixin"))
    withdrawn = events.get_json()["events"][-1]
    assert withdrawn["type"] == "withdrawn"
    assert withdrawn["set"]["withdraw_note"] == "buyer paid early"


def test_withdraw_body_is_validated(api):
    deal = api.create()
    error_of(api.withdraw(deal["id"], json={"reason": 5}), 422, "VALIDATION_FAILED")
    error_of(api.withdraw(deal["id"], data="reason=x", content_type="text/plain"), 415)
    error_of(api.withdraw(deal["id"], data="{", content_type="application/json"), 400)
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


def test_withdrawing_twice_is_idempotent(api):
    deal = api.create()
    first = api.withdraw(deal["id"])
    again = api.withdraw(deal["id"])
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert len(api.events(deal["id"]).get_json()["events"]) == first.get_json()["version"]


def test_an_approved_deal_cannot_be_withdrawn_by_the_exporter(api, fake_redis):
    deal = api.create()
    api.decide(deal["id"], "boc", decision="approve")
    error_of(api.withdraw(deal["id"]), 409, "ALREADY_APPROVED")
    store = DealStore(fake_redis)
    assert store.get(deal["id"]).state == "approved"
    assert store.reserved_cents(LIMIT) == 10_000_000
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") == deal["id"]
    # The invoice cannot be financed a second time (一单多融).
    error_of(api.submit(deal_body("INV-HX-1001")), 409, "DUPLICATE_RECEIVABLE")


def test_the_approving_bank_cancels_its_approval(api, fake_redis):
    deal = api.create()
    api.decide(deal["id"], "boc", decision="approve")
    error_of(api.cancel(deal["id"], "boc"), 422, "VALIDATION_FAILED")  # a reason is required
    rv = api.cancel(deal["id"], "boc", reason="client changed terms", officer="li.wei")
    assert rv.status_code == 200
    assert rv.get_json()["state"] == "cancelled"
    store = DealStore(fake_redis)
    assert store.reserved_cents(LIMIT) == 0
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") is None
    last = store.events(deal["id"])[-1]
    assert last["type"] == "approval_cancelled"
    assert last["by"] == "bank:BOC-NB:li.wei"
    assert last["why"] == ["APPROVAL_CANCELLED_BY_BANK"]
    assert last["set"]["cancellation"]
    # Repeating the cancel is harmless; the exporter still cannot withdraw a cancelled deal.
    assert api.cancel(deal["id"], "boc", reason="again").get_json()["version"] == (
        rv.get_json()["version"]
    )
    error_of(api.withdraw(deal["id"]), 409, "INVALID_STATE")
    # Now the invoice may be financed again.
    assert api.submit(deal_body("INV-HX-1001")).status_code == 202


def test_only_the_approving_bank_cancels_and_only_an_approval(api, fake_redis):
    deal = api.create()
    error_of(api.cancel(deal["id"], "boc", reason="x"), 409, "INVALID_STATE")  # pending
    api.decide(deal["id"], "boc", decision="decline", reason="no appetite")
    approved = api.decide(deal["id"], "icbc", decision="approve").get_json()
    assert approved["state"] == "approved"
    error_of(api.cancel(deal["id"], "boc", reason="x"), 409, "INVALID_STATE")
    error_of(api.cancel(deal["id"], "ccb", reason="x"), 404, "NOT_FOUND")
    error_of(api.cancel(deal["id"], "haixin", reason="x"), 403, "FORBIDDEN")
    assert DealStore(fake_redis).get(deal["id"]).state == "approved"


def test_a_rejected_deal_cannot_be_withdrawn(api):
    deal = api.create(deal_body(requested_amount="50000.00", invoices=[
        {**deal_body()["invoices"][0], "due_date": "2027-06-30"}]))
    assert deal["state"] == "rejected"
    error_of(api.withdraw(deal["id"]), 409, "INVALID_STATE")


def test_another_exporter_cannot_withdraw(api, fake_redis):
    deal = api.create()
    error_of(api.withdraw(deal["id"], "dongfang"), 404, "NOT_FOUND")
    error_of(api.withdraw(deal["id"], "boc"), 403, "FORBIDDEN")
    error_of(api.withdraw("0" * 20), 404, "NOT_FOUND")
    assert DealStore(fake_redis).get(deal["id"]).state == "pending_bank"


def test_withdraw_dongfangs_deal_releases_its_limit(api, fake_redis):
    deal = api.create(dongfang_body(), who="dongfang")
    store = DealStore(fake_redis)
    assert store.reserved_cents(GB_EXPOSURE) == 10_000_000
    assert api.withdraw(deal["id"], "dongfang").status_code == 200
    assert store.reserved_cents(GB_EXPOSURE) == 0
