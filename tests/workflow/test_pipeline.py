"""The pipeline end to end on the demo data: submit, verify, route, decide, withdraw, sweeps."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.conftest import (
    DE_EXPOSURE,
    DEMO_NOW,
    DONGFANG,
    GB_EXPOSURE,
    HAIXIN,
    NANHAI,
    demo_text,
    dongfang_application,
    make_application,
)
from workflow import keys
from workflow.checks import check_results
from workflow.deal import Buyer, iso
from workflow.gateway import InsurerUnavailable
from workflow.pipeline import (
    DealNotFound,
    Decision,
    DuplicateReceivable,
    IdempotencyKeyReused,
    InvalidDecision,
    WorkflowError,
    WrongState,
)
from workflow.reasons import Reason
from workflow.reference import parse_reference, store_reference
from workflow.reference.records import exposure_of
from workflow.states import State

DE_LIMIT = "LIM-HX-DE0001"


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def indexed_states(wf, deal_id) -> list[str]:
    """The state indexes a deal is in (a live deal is in exactly its own; an ended one in none)."""
    r = wf.store.redis
    return [str(s) for s in State if r.zscore(keys.by_state(s), deal_id) is not None]


def holders(wf, app) -> list[str | None]:
    return [wf.store.receivable_holder(app.exporter_uscc, app.buyer.code, inv.number)
            for inv in app.invoices]


def reservation(wf, exposure, deal_id) -> str | None:
    return wf.store.redis.hget(keys.exposure_reservations(exposure), deal_id)


def placed(wf, app=None, key=None):
    """Submit and verify an application (the default one lands at BOC-NB)."""
    submitted = wf.submit(app or make_application(), key)
    return wf.verify(submitted.deal.id)


def decline(wf, deal, reason="not our sector"):
    return wf.decide(deal.id, deal.bank_id, Decision(False, "officer-x", reason=reason))


def events_of(wf, deal_id) -> list[str]:
    return [e["type"] for e in wf.store.events(deal_id)]


# --- submit -------------------------------------------------------------------------------------


def test_submit_commits_a_submitted_deal(wf):
    app = make_application()
    result = wf.submit(app, "key-1")
    deal = result.deal
    assert not result.replayed
    assert deal.state == State.SUBMITTED and deal.version == 1
    assert wf.store.get(deal.id).fields == deal.fields
    assert deal.application == app
    assert deal.fields["invoice_total"] == "100000.00"
    assert deal.fields["idempotency_key"] == "key-1"
    assert deal.fields["request_digest"] == app.fingerprint()
    assert holders(wf, app) == [deal.id]
    assert wf.store.redis.get(keys.idempotency(HAIXIN, "key-1")) == deal.id
    assert wf.store.redis.zrange(keys.by_exporter(HAIXIN), 0, -1) == [deal.id]
    assert indexed_states(wf, deal.id) == ["submitted"]
    # Due for verification one stale period (30 s) after submission.
    due = wf.store.redis.zscore(keys.by_state("submitted"), deal.id)
    assert due == (DEMO_NOW + timedelta(seconds=30)).timestamp()


def test_happy_path_to_the_cheapest_eligible_bank(wf):
    app = make_application()
    deal = wf.submit(app).deal
    deal = wf.verify(deal.id)
    assert deal.state == State.PENDING_BANK
    assert deal.bank_id == "BOC-NB"
    assert wf.store.get(deal.id).fields == deal.fields
    assert deal.version == 4
    assert events_of(wf, deal.id) == ["submitted", "verification_started", "verified",
                                      "offered_to_bank"]
    assert deal.offered_banks == ["BOC-NB"]
    assert set(check_results(deal).values()) == {"ok"}
    assert check_results(deal)["exporter_whitelisted"] == "ok"
    assert deal.get("whitelist") == {"whitelisted": True, "reason": None,
                                     "programmes": ["NB-2026-TONGBAO"]}
    assert deal.get("failures") == []
    # 100,000 insured at 90% = 90,000; x 0.90 advance = 81,000 > 80,000 asked.
    assert deal.fields["insured_amount"] == "90000.00"
    assert deal.fields["eligible_amount"] == "80000.00"
    assert deal.get("pricing") == {"bank_id": "BOC-NB", "amount": "80000.00",
                                   "advance_rate": "0.90", "annual_rate": "0.0420",
                                   "tenor_days": 46, "interest": "429.33"}
    deadline = DEMO_NOW + timedelta(hours=24)
    assert deal.fields["deadline"] == iso(deadline)
    # The limit holds the invoice total for this deal.
    assert deal.fields["limit_id"] == DE_LIMIT
    assert reservation(wf, DE_EXPOSURE, deal.id) == "10000000"
    assert wf.store.reserved_cents(DE_EXPOSURE) == 10_000_000
    r = wf.store.redis
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) == deadline.timestamp()
    assert r.zscore(keys.deadlines(), deal.id) == deadline.timestamp()
    assert r.zscore(keys.by_bank("BOC-NB"), deal.id) == DEMO_NOW.timestamp()
    assert indexed_states(wf, deal.id) == ["pending_bank"]


# --- idempotency and double financing -----------------------------------------------------------


def test_idempotency_key_replay_returns_the_same_deal(wf):
    app = make_application()
    first = wf.submit(app, "key-1")
    again = wf.submit(make_application(), "key-1")
    assert again.replayed
    assert again.deal.id == first.deal.id
    assert again.deal.fields == first.deal.fields
    assert wf.store.redis.zcard(keys.by_exporter(HAIXIN)) == 1
    assert len(wf.store.events(first.deal.id)) == 1


def test_idempotency_key_expires_but_receivable_lock_does_not(wf):
    first = wf.submit(make_application(), "key-ttl")
    r = wf.store.redis
    ttl = r.ttl(keys.idempotency(HAIXIN, "key-ttl"))
    assert 0 < ttl <= wf.settings.idempotency_ttl_seconds
    assert r.ttl(keys.receivable(HAIXIN, "DE-0001", "INV-HX-1001")) == -1  # held until released
    assert r.get(keys.receivable(HAIXIN, "DE-0001", "INV-HX-1001")) == first.deal.id


def test_idempotency_replay_after_the_deal_moved_on(wf):
    first = wf.submit(make_application(), "key-1")
    wf.verify(first.deal.id)
    again = wf.submit(make_application(), "key-1")
    assert again.replayed and again.deal.id == first.deal.id
    assert again.deal.state == State.PENDING_BANK


def test_same_key_different_body_is_refused(wf):
    first = wf.submit(make_application(), "key-1")
    before = sorted(wf.store.redis.keys("xb:deal:*"))
    other = make_application(number="INV-HX-1002")
    with pytest.raises(IdempotencyKeyReused) as info:
        wf.submit(other, "key-1")
    assert info.value.details["deal_id"] == first.deal.id
    assert info.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert sorted(wf.store.redis.keys("xb:deal:*")) == before
    assert holders(wf, other) == [None]


def test_same_key_different_amount_is_refused(wf):
    wf.submit(make_application(), "key-1")
    with pytest.raises(IdempotencyKeyReused):
        wf.submit(make_application(requested_amount="79999.99"), "key-1")


def test_idempotency_keys_belong_to_one_exporter(wf):
    haixin = wf.submit(make_application(), "key-1")
    dongfang = wf.submit(dongfang_application(), "key-1")
    assert not dongfang.replayed
    assert dongfang.deal.id != haixin.deal.id


def test_duplicate_invoice_is_refused(wf):
    first = wf.submit(make_application()).deal
    with pytest.raises(DuplicateReceivable) as info:
        wf.submit(make_application(requested_amount="50000.00"), "another-key")
    assert info.value.details == {"invoice": "INV-HX-1001", "deal_id": first.id}
    assert info.value.code == "DUPLICATE_RECEIVABLE"
    assert wf.store.redis.zcard(keys.by_exporter(HAIXIN)) == 1
    # A refused submission leaves no trace, not even its idempotency key.
    assert wf.store.redis.get(keys.idempotency(HAIXIN, "another-key")) is None


def test_one_duplicate_invoice_refuses_the_whole_application(wf):
    first = wf.submit(make_application(number="INV-HX-1002")).deal
    app = make_application(invoices=[{"number": "INV-HX-1001"}, {"number": "INV-HX-1002"},
                                     {"number": "INV-HX-1003"}])
    with pytest.raises(DuplicateReceivable) as info:
        wf.submit(app)
    assert info.value.details["invoice"] == "INV-HX-1002"
    assert holders(wf, app) == [None, first.id, None]


def test_same_invoice_number_for_another_buyer_is_another_receivable(wf):
    wf.submit(make_application())
    other = make_application(buyer=Buyer("US-0042", "Acme Imports Inc.", "US"))
    assert not wf.submit(other).replayed


@pytest.mark.parametrize("ending", ["withdrawn", "rejected"])
def test_receivable_is_free_again_once_its_deal_ended(wf, ending):
    if ending == "withdrawn":
        first = wf.submit(make_application()).deal
        wf.withdraw(first.id, HAIXIN)
        app = make_application()
    else:
        # Asking for more than the buyer limit (500,000): rejected, LIMIT_INSUFFICIENT.
        app = make_application(amount="600000.00", requested_amount="400000.00")
        first = placed(wf, app)
        assert first.state == State.REJECTED
    assert holders(wf, app) == [None]
    second = wf.submit(app).deal
    assert second.id != first.id
    assert holders(wf, app) == [second.id]


# --- rejection --------------------------------------------------------------------------------


def test_rejected_deal_has_reason_codes_and_releases_its_locks(wf):
    # INV-HX-9999 was never declared to the insurer.
    app = make_application(invoices=[{"number": "INV-HX-1001"}, {"number": "INV-HX-9999"}])
    deal = placed(wf, app)
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == ["SHIPMENT_NOT_DECLARED"]
    assert deal.get("failures") == [{"invoice": "INV-HX-9999", "check": "shipment_declared",
                                     "reason": "SHIPMENT_NOT_DECLARED"}]
    assert check_results(deal)["shipment_declared"] == "SHIPMENT_NOT_DECLARED"
    assert wf.store.events(deal.id)[-1]["why"] == ["SHIPMENT_NOT_DECLARED"]
    assert holders(wf, app) == [None, None]
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert indexed_states(wf, deal.id) == []
    assert wf.store.get(deal.id).fields == deal.fields


def test_expired_whitelist_and_unpaid_premium(wf):
    app = make_application(exporter_uscc=NANHAI, policy_no="SIN-2026-0003",
                           buyer=Buyer("DE-7777", "Berlin Elektronik", "DE"), number="INV-NH-1")
    deal = placed(wf, app)
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == ["PREMIUM_UNPAID", "LIMIT_NOT_FOUND", "SHIPMENT_NOT_DECLARED"]
    assert check_results(deal)["exporter_whitelisted"] == "WHITELIST_EXPIRED"
    assert deal.get("whitelist") == {"whitelisted": False, "reason": "WHITELIST_EXPIRED",
                                     "programmes": ["SZ-2025-TONGBAO"]}


def test_policy_of_another_exporter_is_not_found(wf):
    app = make_application(exporter_uscc=DONGFANG)  # Haixin's policy SIN-2026-0001
    deal = placed(wf, app)
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == ["POLICY_NOT_FOUND"]


def test_buyer_overdue_is_rejected(wf):
    app = make_application(buyer=Buyer("BR-0099", "Rio Comercio", "BR"))
    deal = placed(wf, app)
    assert Reason.BUYER_OVERDUE in deal.get("reasons")


def test_limit_insufficient_names_the_room_left(wf):
    first = placed(wf, make_application(amount="450000.00", requested_amount="300000.00"))
    assert first.state == State.PENDING_BANK
    second_app = make_application(number="INV-HX-1002", amount="60000.00",
                                  requested_amount="40000.00")
    second = placed(wf, second_app)
    assert second.state == State.REJECTED
    assert second.get("reasons") == ["LIMIT_INSUFFICIENT"]
    assert second.get("failures") == [{"invoice": "*", "check": "limit_has_room",
                                       "reason": "LIMIT_INSUFFICIENT", "available": "50000.00"}]
    assert check_results(second)["limit_has_room"] == "LIMIT_INSUFFICIENT"
    assert reservation(wf, DE_EXPOSURE, second.id) is None
    assert wf.store.reserved_cents(DE_EXPOSURE) == 45_000_000
    assert holders(wf, second_app) == [None]
    # Exactly the room left still fits.
    third = placed(wf, make_application(number="INV-HX-1003", amount="50000.00",
                                        requested_amount="40000.00"))
    assert third.state == State.PENDING_BANK
    assert wf.store.reserved_cents(DE_EXPOSURE) == 50_000_000


# --- routing ---------------------------------------------------------------------------------


def test_decline_routes_to_the_next_bank(wf):
    deal = placed(wf)
    declined = decline(wf, deal)
    assert declined.state == State.ROUTING
    assert declined.bank_id is None and declined.fields["deadline"] == ""
    assert declined.get("decision") == {"bank_id": "BOC-NB", "officer": "officer-x",
                                        "decision": "decline", "reason": "not our sector"}
    assert wf.store.events(deal.id)[-1]["why"] == ["BANK_DECLINED"]
    assert wf.store.events(deal.id)[-1]["by"] == "bank:BOC-NB:officer-x"
    r = wf.store.redis
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert indexed_states(wf, deal.id) == ["routing"]
    routed = wf.route(deal.id)
    assert routed.state == State.PENDING_BANK and routed.bank_id == "ICBC-NB"
    assert routed.offered_banks == ["BOC-NB", "ICBC-NB"]
    # ICBC advances 85%: 90,000 x 0.85 = 76,500.
    assert routed.fields["eligible_amount"] == "76500.00"
    assert r.zscore(keys.bank_queue("ICBC-NB"), deal.id) is not None
    # Still in BOC's history, no longer in its queue.
    assert r.zscore(keys.by_bank("BOC-NB"), deal.id) is not None
    assert wf.store.reserved_cents(DE_EXPOSURE) == 10_000_000


def test_verify_also_routes_a_deal_left_in_routing(wf):
    deal = decline(wf, placed(wf))
    assert wf.verify(deal.id).bank_id == "ICBC-NB"


def test_all_banks_decline_leaves_the_deal_unplaced_and_releases_it(wf):
    app = make_application()
    deal = placed(wf, app)
    for expected in ("BOC-NB", "ICBC-NB", "CCB-NB"):
        assert deal.bank_id == expected
        deal = wf.route(decline(wf, deal).id)
    assert deal.state == State.UNPLACED
    assert deal.get("reasons") == ["NO_ELIGIBLE_BANK"]
    assert wf.store.events(deal.id)[-1]["why"] == ["NO_ELIGIBLE_BANK"]
    assert deal.offered_banks == ["BOC-NB", "ICBC-NB", "CCB-NB"]
    assert reservation(wf, DE_EXPOSURE, deal.id) is None
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert holders(wf, app) == [None]
    assert indexed_states(wf, deal.id) == []
    r = wf.store.redis
    assert all(r.zscore(keys.bank_queue(b), deal.id) is None for b in deal.offered_banks)
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert wf.store.get(deal.id).fields == deal.fields


def test_not_whitelisted_exporter_skips_the_bank_that_requires_it(wf):
    deal = placed(wf, dongfang_application())
    assert deal.state == State.PENDING_BANK
    assert deal.bank_id == "ICBC-NB"  # BOC-NB is cheaper but requires a whitelist
    assert check_results(deal)["exporter_whitelisted"] == "EXPORTER_NOT_WHITELISTED"
    assert deal.get("whitelist") == {"whitelisted": False, "reason": "EXPORTER_NOT_WHITELISTED",
                                     "programmes": []}
    assert deal.get("routing_notes") == {"BOC-NB": "EXPORTER_NOT_WHITELISTED"}
    verified = next(e for e in wf.store.events(deal.id) if e["type"] == "verified")
    assert verified["why"] == ["EXPORTER_NOT_WHITELISTED"]
    assert deal.offered_banks == ["ICBC-NB"]
    # CCB-NB does not lend in EUR: after ICBC declines, nobody is left.
    deal = wf.route(decline(wf, deal).id)
    assert deal.state == State.UNPLACED
    assert deal.get("routing_notes") == {"BOC-NB": "EXPORTER_NOT_WHITELISTED",
                                         "CCB-NB": "BANK_CURRENCY_UNSUPPORTED"}
    assert wf.store.reserved_cents(GB_EXPOSURE) == 0


def test_no_bank_at_all_leaves_the_deal_unplaced(wf):
    # Too small for every demo bank (BOC-NB's minimum is 10,000).
    app = make_application(amount="5000.00", requested_amount="4000.00")
    deal = placed(wf, app)
    assert deal.state == State.UNPLACED
    assert deal.get("routing_notes") == {"BOC-NB": "BANK_AMOUNT_OUT_OF_RANGE",
                                         "ICBC-NB": "BANK_AMOUNT_OUT_OF_RANGE",
                                         "CCB-NB": "BANK_AMOUNT_OUT_OF_RANGE"}
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert holders(wf, app) == [None]


# --- bank decisions ----------------------------------------------------------------------------


def test_approve(wf):
    deal = placed(wf)
    approved = wf.decide(deal.id, "BOC-NB", Decision(True, "officer-1",
                                                     amount=Decimal("75000.00")))
    assert approved.state == State.APPROVED
    assert approved.fields["approved_amount"] == "75000.00"
    assert approved.fields["annual_rate"] == "0.0420"  # the offered rate by default
    assert approved.get("decision") == {"bank_id": "BOC-NB", "officer": "officer-1",
                                        "decision": "approve", "amount": "75000.00",
                                        "annual_rate": "0.0420"}
    r = wf.store.redis
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert indexed_states(wf, deal.id) == ["approved"]
    # Approved is not the end: the limit and the receivable stay held.
    assert reservation(wf, DE_EXPOSURE, deal.id) == "10000000"
    assert holders(wf, deal.application) == [deal.id]


def test_approve_defaults_to_the_financeable_amount(wf):
    deal = placed(wf)
    approved = wf.decide(deal.id, "BOC-NB", Decision(True, "o", annual_rate=Decimal("0.04")))
    assert approved.fields["approved_amount"] == "80000.00"
    assert approved.fields["annual_rate"] == "0.04"


@pytest.mark.parametrize("amount", ["80000.01", "0", "-1"])
def test_approve_more_than_financeable_or_nothing_is_refused(wf, amount):
    deal = placed(wf)
    with pytest.raises(InvalidDecision) as info:
        wf.decide(deal.id, "BOC-NB", Decision(True, "o", amount=Decimal(amount)))
    assert info.value.field == "amount"
    assert wf.store.get(deal.id).fields == deal.fields


def test_decide_by_a_bank_never_offered_the_deal(wf):
    deal = placed(wf)
    with pytest.raises(DealNotFound):
        wf.decide(deal.id, "ICBC-NB", Decision(True, "o"))
    with pytest.raises(DealNotFound):
        wf.decide("no-such-deal", "BOC-NB", Decision(True, "o"))
    assert wf.store.get(deal.id).fields == deal.fields


def test_decide_on_an_approved_deal_is_wrong_state(wf):
    deal = placed(wf)
    wf.decide(deal.id, "BOC-NB", Decision(True, "o"))
    with pytest.raises(WrongState) as info:
        wf.decide(deal.id, "BOC-NB", Decision(False, "o"))
    assert info.value.details["state"] == "approved"
    assert info.value.code == "INVALID_STATE"


def test_bank_that_declined_cannot_decide_again(wf):
    deal = wf.route(decline(wf, placed(wf)).id)
    assert deal.bank_id == "ICBC-NB"
    with pytest.raises(WrongState):
        wf.decide(deal.id, "BOC-NB", Decision(True, "o"))
    assert wf.store.get(deal.id).fields == deal.fields


# --- deadlines ------------------------------------------------------------------------------------


def test_missed_deadline_goes_back_to_routing(wf):
    deal = placed(wf)
    wf.clock.advance(hours=23, minutes=59)
    assert wf.expire_deadlines() == []
    wf.clock.advance(minutes=1)  # exactly the deadline
    assert wf.expire_deadlines() == [deal.id]
    expired = wf.store.get(deal.id)
    assert expired.state == State.ROUTING
    assert expired.bank_id is None
    assert expired.get("decision") == {"bank_id": "BOC-NB", "decision": "expired"}
    last = wf.store.events(deal.id)[-1]
    assert (last["type"], last["by"], last["why"]) == (
        "deadline_missed", "sweeper", ["BANK_DEADLINE_MISSED"])
    r = wf.store.redis
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert wf.expire_deadlines() == []  # nothing twice
    # The late bank can no longer decide; the deal moves on to the next bank.
    with pytest.raises(WrongState):
        wf.decide(deal.id, "BOC-NB", Decision(True, "o"))
    assert wf.route(deal.id).bank_id == "ICBC-NB"


def test_decision_racing_the_deadline_sweep_stands(wf, monkeypatch):
    deal = placed(wf)
    wf.clock.advance(hours=25)
    real_get = wf.store.get

    def get_then_bank_approves(deal_id):
        seen = real_get(deal_id)
        monkeypatch.setattr(wf.store, "get", real_get)
        # The officer's request read the deal just before the deadline...
        wf.clock.advance(hours=-2)
        wf.decide(deal_id, "BOC-NB", Decision(True, "quick-officer"))
        wf.clock.advance(hours=2)
        return seen  # ...and the sweeper decides on what it read before the approval

    monkeypatch.setattr(wf.store, "get", get_then_bank_approves)
    assert wf.expire_deadlines() == []
    final = wf.store.get(deal.id)
    assert final.state == State.APPROVED
    assert events_of(wf, deal.id)[-1] == "approved"
    assert "deadline_missed" not in events_of(wf, deal.id)
    assert wf.store.redis.zscore(keys.deadlines(), deal.id) is None


def test_a_decision_after_the_deadline_is_refused_before_any_sweep(wf):
    deal = placed(wf)
    wf.clock.advance(hours=24, seconds=1)
    with pytest.raises(WrongState, match="deadline"):
        wf.decide(deal.id, "BOC-NB", Decision(True, "late-officer"))
    assert wf.store.get(deal.id).state == State.PENDING_BANK  # the sweep moves it on


def test_sweep_racing_a_decision_refuses_the_decision(wf, monkeypatch):
    deal = placed(wf)
    wf.clock.advance(hours=25)
    real_get = wf.store.get

    def get_then_sweep(deal_id):
        seen = real_get(deal_id)
        monkeypatch.setattr(wf.store, "get", real_get)
        assert wf.expire_deadlines() == [deal_id]
        return seen  # the officer decides on the page they loaded before the sweep

    monkeypatch.setattr(wf.store, "get", get_then_sweep)
    with pytest.raises(WrongState):
        wf.decide(deal.id, "BOC-NB", Decision(True, "slow-officer"))
    final = wf.store.get(deal.id)
    assert final.state == State.ROUTING
    assert events_of(wf, deal.id)[-1] == "deadline_missed"


def test_deadline_leftover_of_a_deal_that_moved_on_is_cleaned(wf):
    deal = placed(wf)
    wf.decide(deal.id, "BOC-NB", Decision(True, "o"))
    wf.store.redis.zadd(keys.deadlines(), {deal.id: 1.0})  # e.g. a crash between two writes
    assert wf.expire_deadlines() == []
    assert wf.store.redis.zscore(keys.deadlines(), deal.id) is None
    assert wf.store.get(deal.id).state == State.APPROVED


# --- stranded deals and holds --------------------------------------------------------------------


def test_stranded_returns_overdue_worker_owned_deals_and_postpones_them(wf):
    waiting = wf.submit(make_application()).deal
    pending = placed(wf, make_application(number="INV-HX-1002"))
    assert wf.stranded() == []
    wf.clock.advance(seconds=30)
    assert wf.stranded() == [(waiting.id, State.SUBMITTED)]
    assert wf.stranded() == []  # postponed one stale period
    score = wf.store.redis.zscore(keys.by_state("submitted"), waiting.id)
    assert score == (wf.clock() + timedelta(seconds=30)).timestamp()
    wf.clock.advance(seconds=30)
    assert wf.stranded() == [(waiting.id, State.SUBMITTED)]
    assert pending.state == State.PENDING_BANK  # a bank owns it, not a worker


def test_stranded_finds_a_declined_deal_nobody_routed(wf):
    deal = decline(wf, placed(wf))
    wf.clock.advance(seconds=31)
    assert wf.stranded() == [(deal.id, State.ROUTING)]


def test_hold_then_verify_brings_it_back(wf):
    deal = wf.submit(make_application()).deal
    held = wf.hold(deal.id)
    assert held.state == State.ON_HOLD
    assert held.fields["hold_reason"] == "INSURER_UNAVAILABLE"
    assert events_of(wf, deal.id) == ["submitted", "verification_started", "on_hold"]
    assert wf.store.events(deal.id)[-1]["why"] == ["INSURER_UNAVAILABLE"]
    assert indexed_states(wf, deal.id) == ["on_hold"]
    # Retried after hold_retry_seconds (60), not before.
    wf.clock.advance(seconds=59)
    assert wf.stranded() == []
    wf.clock.advance(seconds=1)
    assert wf.stranded() == [(deal.id, State.ON_HOLD)]
    resumed = wf.verify(deal.id)
    assert resumed.state == State.PENDING_BANK and resumed.bank_id == "BOC-NB"
    assert indexed_states(wf, deal.id) == ["pending_bank"]


def verify_with_insurer_down(wf, monkeypatch):
    """Submit a deal and try to verify it while the insurer cannot be reached."""
    deal = wf.submit(make_application()).deal

    def unreachable(app):
        raise InsurerUnavailable("timeout")

    monkeypatch.setattr(wf.insurer, "cover_facts", unreachable)
    # A remote insurer: no answer from the reference data (the local one's way in).
    monkeypatch.setattr(wf.insurer, "cover_facts_at", None)
    with pytest.raises(InsurerUnavailable):
        wf.verify(deal.id)
    return deal


def test_a_local_check_that_fails_leaves_the_deal_submitted_and_nothing_written(
    wf, monkeypatch
):
    # With the local insurer the claim commits with the verdict (one chain): a check that
    # fails half way (Redis gone) leaves no claim, and the sweeper still owns the deal.
    deal = wf.submit(make_application()).deal

    def broken(app, _view):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(wf.insurer, "cover_facts_at", broken)
    with pytest.raises(ConnectionError):
        wf.verify(deal.id)
    assert wf.store.get(deal.id).fields == deal.fields
    assert events_of(wf, deal.id) == ["submitted"]
    assert indexed_states(wf, deal.id) == ["submitted"]
    wf.clock.advance(seconds=30)
    assert wf.stranded() == [(deal.id, State.SUBMITTED)]
    monkeypatch.undo()
    assert wf.verify(deal.id).state == State.PENDING_BANK
    assert events_of(wf, deal.id) == [
        "submitted", "verification_started", "verified", "offered_to_bank"
    ]


def test_insurer_down_leaves_an_owned_verifying_deal(wf, monkeypatch):
    deal = verify_with_insurer_down(wf, monkeypatch)
    stuck = wf.store.get(deal.id)
    assert stuck.state == State.VERIFYING
    assert indexed_states(wf, deal.id) == ["verifying"]
    assert wf.store.redis.hlen(keys.exposure_reservations(DE_EXPOSURE)) == 0
    # The sweeper owns it: found once the stale period has passed, then parked on hold.
    wf.clock.advance(seconds=30)
    assert wf.stranded() == [(deal.id, State.VERIFYING)]
    assert wf.hold(deal.id).state == State.ON_HOLD
    monkeypatch.undo()
    wf.clock.advance(seconds=60)
    assert wf.stranded() == [(deal.id, State.ON_HOLD)]
    assert wf.verify(deal.id).state == State.PENDING_BANK


def test_a_stray_retry_does_not_end_a_hold_early(wf):
    deal = wf.submit(make_application()).deal
    held = wf.hold(deal.id)
    wf.clock.advance(seconds=59)
    assert wf.verify(deal.id).fields == held.fields  # another retry chain's late attempt
    assert events_of(wf, deal.id) == ["submitted", "verification_started", "on_hold"]
    wf.clock.advance(seconds=1)
    assert wf.verify(deal.id).state == State.PENDING_BANK


def test_a_pending_insurer_retry_keeps_the_sweeper_off(wf, monkeypatch):
    deal = verify_with_insurer_down(wf, monkeypatch)
    wf.expect_retry(deal.id, 155)  # the task's backoff
    wf.clock.advance(seconds=155 + 29)
    assert wf.stranded() == []  # no second retry chain
    wf.clock.advance(seconds=2)
    assert wf.stranded() == [(deal.id, State.VERIFYING)]  # the retry never came: sweep it


def test_hold_only_acts_before_verification_ends(wf):
    deal = placed(wf)
    assert wf.hold(deal.id).fields == deal.fields
    assert wf.hold("no-such-deal") is None


# --- idempotent steps ----------------------------------------------------------------------------


def test_verify_twice_changes_nothing_twice(wf):
    deal = placed(wf)
    events = wf.store.events(deal.id)
    again = wf.verify(deal.id)
    assert again.fields == deal.fields == wf.store.get(deal.id).fields
    assert wf.store.events(deal.id) == events
    assert wf.store.reserved_cents(DE_EXPOSURE) == 10_000_000


def test_verify_of_a_rejected_or_missing_deal_changes_nothing(wf):
    deal = placed(wf, make_application(number="INV-HX-9999"))
    assert deal.state == State.REJECTED
    assert wf.verify(deal.id).fields == deal.fields
    assert len(wf.store.events(deal.id)) == 3
    assert wf.verify("no-such-deal") is None
    assert wf.route("no-such-deal") is None


def test_route_of_a_pending_deal_changes_nothing(wf):
    deal = placed(wf)
    assert wf.route(deal.id).fields == deal.fields
    assert len(wf.store.events(deal.id)) == 4


def test_expired_and_declined_steps_are_not_repeated(wf):
    deal = placed(wf)
    decline(wf, deal)
    with pytest.raises(WrongState):
        decline(wf, deal)  # a double-clicked decline
    assert events_of(wf, deal.id).count("declined") == 1


# --- withdraw -------------------------------------------------------------------------------------


def test_withdraw_by_another_exporter_is_not_found(wf):
    deal = wf.submit(make_application()).deal
    with pytest.raises(DealNotFound):
        wf.withdraw(deal.id, DONGFANG)
    with pytest.raises(DealNotFound):
        wf.withdraw("no-such-deal", HAIXIN)
    assert wf.store.get(deal.id).state == State.SUBMITTED


def test_withdraw_a_pending_deal_releases_everything(wf):
    deal = placed(wf)
    withdrawn = wf.withdraw(deal.id, HAIXIN)
    assert withdrawn.state == State.WITHDRAWN
    assert withdrawn.get("reasons") == ["WITHDRAWN_BY_EXPORTER"]
    assert wf.store.events(deal.id)[-1]["by"] == f"exporter:{HAIXIN}"
    r = wf.store.redis
    assert r.zscore(keys.bank_queue("BOC-NB"), deal.id) is None
    assert r.zscore(keys.deadlines(), deal.id) is None
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0
    assert holders(wf, deal.application) == [None]
    assert indexed_states(wf, deal.id) == []
    # Withdrawing again is a no-op, and the bank can no longer act on it.
    assert wf.withdraw(deal.id, HAIXIN).fields == withdrawn.fields
    assert len(wf.store.events(deal.id)) == 5
    with pytest.raises(WrongState):
        wf.decide(deal.id, "BOC-NB", Decision(True, "o"))


def test_withdraw_after_disbursement_is_refused(wf):
    deal = wf.decide(placed(wf).id, "BOC-NB", Decision(True, "o"))
    disbursed = wf.store.transition(deal, State.DISBURSED, actor="bank:BOC-NB:o",
                                    event="disbursed")
    with pytest.raises(WrongState) as info:
        wf.withdraw(deal.id, HAIXIN)
    assert info.value.details["state"] == "disbursed"
    assert wf.store.get(deal.id).fields == disbursed.fields


# --- reference data reloaded under live verification ----------------------------------------


def test_limit_moved_to_another_buyer_finances_nothing_for_the_old_buyer(wf):
    # Before the fix the reload left LIM-HX-DE0001 under (policy, DE-0001) as well: a deal for
    # DE-0001 was financed on the limit the insurer had given to another buyer.
    document = json.loads(demo_text(), parse_float=Decimal)
    document["limits"][0]["buyer_code"] = "DE-0002"
    store_reference(wf.store.redis, parse_reference({"limits": document["limits"]}))
    deal = placed(wf, make_application())
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == [str(Reason.LIMIT_NOT_FOUND)]
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0


def test_limit_removed_from_the_file_finances_nothing(wf):
    document = json.loads(demo_text(), parse_float=Decimal)
    store_reference(wf.store.redis, parse_reference({"limits": document["limits"][1:]}))
    deal = placed(wf, make_application())
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == [str(Reason.LIMIT_NOT_FOUND)]


def test_stale_lookup_to_another_buyers_limit_is_a_buyer_mismatch(wf):
    # A lookup entry no reload cleaned (written by hand, or before the registries existed)
    # pointing at the limit of another German buyer: same country, another buyer code.
    document = json.loads(demo_text(), parse_float=Decimal)
    other = {**document["limits"][0], "limit_id": "LIM-HX-DE0002", "buyer_code": "DE-0002"}
    store_reference(wf.store.redis, parse_reference({"limits": [*document["limits"], other]}))
    r = wf.store.redis
    r.delete(keys.limits_for("SIN-2026-0001", "DE-0001"))
    r.sadd(keys.limits_for("SIN-2026-0001", "DE-0001"), "LIM-HX-DE0002")
    deal = placed(wf, make_application())
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == [str(Reason.BUYER_MISMATCH)]
    assert wf.store.reserved_cents(exposure_of("SIN-2026-0001", "DE-0002", "USD")) == 0
    assert wf.store.reserved_cents(DE_EXPOSURE) == 0


def test_buyer_name_differing_is_recorded_as_a_warning_and_still_financed(wf):
    deal = placed(wf, make_application(buyer=Buyer("DE-0001", "Mueller Trading", "DE")))
    assert deal.state == State.PENDING_BANK
    warning = {"code": "BUYER_NAME_MISMATCH", "stated_name": "Mueller Trading",
               "insurer_name": "Müller Handels GmbH"}
    assert deal.get("warnings") == [warning]
    assert wf.store.get(deal.id).get("warnings") == [warning]
    verified = next(e for e in wf.store.events(deal.id) if e["type"] == "verified")
    assert verified["why"] == ["BUYER_NAME_MISMATCH"]
    assert json.loads(verified["set"]["warnings"]) == [warning]


def test_matching_buyer_name_records_no_warning(wf):
    deal = placed(wf, make_application(buyer=Buyer("DE-0001", "MÜLLER  Handels GmbH", "DE")))
    assert deal.state == State.PENDING_BANK
    assert deal.get("warnings") is None
    verified = next(e for e in wf.store.events(deal.id) if e["type"] == "verified")
    assert verified.get("why", []) == []


# --- the buyer limit changes under live deals -----------------------------------------------


def _reload_limits(wf, limits: list[dict]) -> None:
    store_reference(wf.store.redis, parse_reference({"limits": limits}))


def _demo_limits() -> list[dict]:
    return json.loads(demo_text(), parse_float=Decimal)["limits"]


def test_a_limit_reissued_under_a_new_id_still_counts_the_old_ones_deals(wf):
    """Reservations count per buyer exposure (policy, buyer, currency), not per limit record:
    the insurer's new limit for the same buyer starts from what the live deals already hold."""
    limits = _demo_limits()
    limits[0]["amount"] = "150000.00"
    _reload_limits(wf, limits)
    first = placed(wf, make_application(number="INV-HX-1001"))
    assert first.state == State.PENDING_BANK and first.fields["limit_id"] == DE_LIMIT
    limits[0]["limit_id"] = "LIM-HX-DE0001-R1"
    _reload_limits(wf, limits)
    second = placed(wf, make_application(number="INV-HX-1002"))
    assert second.state == State.REJECTED
    assert second.get("reasons") == [str(Reason.LIMIT_INSUFFICIENT)]
    assert second.get("failures")[0]["available"] == "50000.00"
    assert wf.store.reserved_cents(DE_EXPOSURE) == 10_000_000
    # Ending the first deal frees the room on the new limit.
    wf.withdraw(first.id, HAIXIN)
    third = placed(wf, make_application(number="INV-HX-1003"))
    assert third.state == State.PENDING_BANK and third.fields["limit_id"] == "LIM-HX-DE0001-R1"


@pytest.mark.parametrize("change", ["removed", "cancelled"])
def test_a_bank_cannot_approve_once_the_limit_is_withdrawn(wf, change):
    deal = placed(wf)
    limits = _demo_limits()
    if change == "removed":
        limits = limits[1:]
    else:
        limits[0]["status"] = "cancelled"
    _reload_limits(wf, limits)
    reason = "LIMIT_NOT_FOUND" if change == "removed" else "LIMIT_INACTIVE"
    with pytest.raises(WorkflowError) as refused:
        wf.decide(deal.id, "BOC-NB", Decision(True, "wang"))
    assert refused.value.code == reason
    assert wf.store.get(deal.id).state == State.PENDING_BANK
    # Declining is still possible: the deal moves on (and the next bank is refused likewise).
    assert wf.decide(deal.id, "BOC-NB", Decision(False, "wang", reason="no cover")).state == (
        State.ROUTING
    )


def test_an_approval_stands_when_the_limit_was_re_issued_for_the_same_buyer(wf):
    deal = placed(wf)
    limits = _demo_limits()
    limits[0]["limit_id"] = "LIM-HX-DE0001-R1"
    _reload_limits(wf, limits)
    assert wf.decide(deal.id, "BOC-NB", Decision(True, "wang")).state == State.APPROVED
