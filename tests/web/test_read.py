"""GET /api/v1/deals/<id> and /events: who sees what, check results, the ordered log."""

from __future__ import annotations

import pytest

from tests.web.conftest import DONGFANG, deal_body, dongfang_body, error_of, invoice


def test_owner_sees_the_deal(api):
    deal = api.create()
    rv = api.get(deal["id"])
    assert rv.status_code == 200
    assert rv.get_json() == deal
    assert deal["checks"]
    assert all(v == "ok" for v in deal["checks"].values()), deal["checks"]
    assert deal["failures"] == [] and deal["reasons"] == []
    assert deal["whitelist"]["whitelisted"] is True
    assert deal["warnings"] == []
    assert deal["created_at"].endswith("+00:00")


@pytest.mark.parametrize("who", ["dongfang", "icbc", "ccb"])
def test_others_get_404(api, who):
    deal = api.create()
    error = error_of(api.get(deal["id"], who), 404, "NOT_FOUND")
    assert error["fields"] == {}
    error_of(api.events(deal["id"], who), 404, "NOT_FOUND")


@pytest.mark.parametrize("deal_id", ["0" * 20, "x" * 65, "nope"])
def test_unknown_deal_is_404(api, deal_id):
    error_of(api.get(deal_id), 404, "NOT_FOUND")
    error_of(api.get(deal_id, "boc"), 404, "NOT_FOUND")


def test_get_needs_a_token(client, api):
    deal = api.create()
    rv = client.get(f"/api/v1/deals/{deal['id']}")
    error_of(rv, 401, "UNAUTHENTICATED")
    assert "WWW-Authenticate" in rv.headers


def test_holding_bank_sees_bank_deadline_and_pricing(api, clock):
    deal = api.create()
    rv = api.get(deal["id"], "boc")
    assert rv.status_code == 200
    seen = rv.get_json()
    assert seen["state"] == "pending_bank"
    bank = seen["bank"]
    assert bank["bank_id"] == "BOC-NB"
    assert bank["deadline"] == "2026-11-25T09:00:00.000+00:00"  # 24 decision hours
    assert bank["pricing"]["bank_id"] == "BOC-NB"
    assert bank["pricing"]["amount"] == "80000.00"
    assert bank["pricing"]["annual_rate"] == "0.0420"
    assert seen["amounts"]["eligible"] == "80000.00"
    # Which banks were tried is the exporter's and the operator's business, not a bank's.
    assert "offered_banks" not in seen


def test_exporter_sees_the_bank_too(api):
    deal = api.create()
    assert deal["bank"]["bank_id"] == "BOC-NB"
    assert deal["bank"]["deadline"]


def test_bank_that_declined_no_longer_sees_the_offer(api):
    deal = api.create()
    assert api.decide(deal["id"], "boc", decision="decline", reason="no appetite").status_code \
        == 200
    assert api.decide(deal["id"], "icbc", decision="approve").status_code == 200
    seen = api.get(deal["id"], "boc").get_json()
    # BOC sees the deal as it was when its offer ended: its own decline, nothing later.
    assert seen["state"] == "routing"
    assert seen["bank"] is None
    assert seen["decision"]["bank_id"] == "BOC-NB" and seen["decision"]["decision"] == "decline"
    assert seen["amounts"]["eligible"] is None and seen["amounts"]["approved"] is None
    assert "ICBC" not in str(seen) and seen["amounts"]["approved"] is None
    events = api.events(deal["id"], "boc").get_json()["events"]
    assert events[-1]["type"] == "declined" and events[-1]["v"] == seen["version"]
    assert "ICBC" not in str(events) and "approved" not in str(events)
    listed = api.list("boc").get_json()["items"]
    assert [(d["id"], d["state"], d["version"]) for d in listed] == [
        (deal["id"], "routing", seen["version"])
    ]


def test_bank_whose_deadline_passed_sees_nothing_later(api):
    deal = api.create()
    api.clock.advance(hours=25)
    flow = api.client.application.extensions["xinbao"]
    assert flow.expire_deadlines() == [deal["id"]]
    flow.route(deal["id"])
    api.decide(deal["id"], "icbc", decision="decline", reason="too big")
    flow.route(deal["id"])
    seen = api.get(deal["id"], "boc").get_json()
    assert seen["state"] == "routing" and seen["decision"]["decision"] == "expired"
    events = api.events(deal["id"], "boc").get_json()["events"]
    assert [e["type"] for e in events] == [
        "submitted", "verification_started", "verified", "offered_to_bank", "deadline_missed"
    ]
    icbc = api.get(deal["id"], "icbc").get_json()
    assert icbc["decision"]["decision"] == "decline" and icbc["state"] == "routing"
    assert [e["type"] for e in api.events(deal["id"], "icbc").get_json()["events"]][-1] == (
        "declined"
    )
    # The exporter sees everything, to the offer to CCB.
    mine = api.get(deal["id"]).get_json()
    assert mine["state"] == "pending_bank" and mine["offered_banks"][-1] == "CCB-NB"


def test_the_approving_bank_keeps_seeing_its_deal(api):
    deal = api.create()
    api.decide(deal["id"], "boc", decision="approve")
    api.cancel(deal["id"], "boc", reason="terms changed")
    seen = api.get(deal["id"], "boc").get_json()
    assert seen["state"] == "cancelled"
    assert api.events(deal["id"], "boc").get_json()["events"][-1]["type"] == (
        "approval_cancelled"
    )


def test_events_never_show_internal_fields(api):
    deal = api.submit(key="key-123").get_json()
    for who in ("haixin", "boc"):
        text = str(api.events(deal["id"], who).get_json())
        assert "request_digest" not in text and "idempotency_key" not in text
        assert "key-123" not in text
    text = str(api.get(deal["id"]).get_json())
    assert "request_digest" not in text and "idempotency_key" not in text


def test_each_failed_check_says_why_in_words(api):
    body = deal_body("INV-HX-9999", invoices=[invoice("INV-HX-9999")])
    deal = api.create(body)
    failure = next(f for f in deal["failures"] if f["reason"] == "SHIPMENT_NOT_DECLARED")
    assert failure["message"] == "The shipment was not declared to the insurer."


def test_holding_bank_does_not_see_the_previous_banks_decision(api):
    deal = api.create()
    api.decide(deal["id"], "boc", decision="decline", reason="no appetite")
    seen = api.get(deal["id"], "icbc").get_json()
    assert seen["bank"]["bank_id"] == "ICBC-NB"
    assert seen["decision"] is None
    assert "BOC-NB" not in str(seen)


def test_rejected_deal_shows_check_results_with_reason_codes(api, fake_redis):
    body = deal_body("INV-HX-9999", invoices=[invoice("INV-HX-9999")])
    deal = api.create(body)
    assert deal["state"] == "rejected"
    assert deal["checks"]["shipment_declared"] == "SHIPMENT_NOT_DECLARED"
    assert "SHIPMENT_NOT_DECLARED" in deal["reasons"]
    assert {"invoice": "INV-HX-9999", "check": "shipment_declared",
            "reason": "SHIPMENT_NOT_DECLARED",
            "message": "The shipment was not declared to the insurer."} in deal["failures"]
    assert deal["bank"] is None and deal["offered_banks"] == []
    assert deal["amounts"]["reserved_on_limit"] is None
    # A rejected deal holds no lock on its invoice and no limit reservation.
    assert fake_redis.keys("xb:recv:*") == []


def test_buyer_name_differing_from_the_insurers_is_a_warning_on_the_deal(api):
    body = deal_body(buyer={"code": "DE-0001", "name": "Mueller Trading", "country": "DE"})
    deal = api.create(body)
    assert deal["state"] == "pending_bank"
    warning = {"code": "BUYER_NAME_MISMATCH", "stated_name": "Mueller Trading",
               "insurer_name": "Müller Handels GmbH",
               "message": "The buyer's stated name differs from the insurer's record."}
    assert deal["warnings"] == [warning]
    # The bank deciding on it reads the same warning.
    assert api.get(deal["id"], "boc").get_json()["warnings"] == [warning]


def test_dongfang_is_not_whitelisted_and_skips_boc(api):
    deal = api.create(dongfang_body(), who="dongfang")
    assert deal["exporter_uscc"] == DONGFANG
    assert deal["state"] == "pending_bank"
    assert deal["checks"]["exporter_whitelisted"] == "EXPORTER_NOT_WHITELISTED"
    assert deal["whitelist"]["whitelisted"] is False
    assert deal["bank"]["bank_id"] == "ICBC-NB"
    assert deal["offered_banks"] == ["ICBC-NB"]
    error_of(api.get(deal["id"], "boc"), 404, "NOT_FOUND")
    assert api.get(deal["id"], "icbc").status_code == 200


# --- events -----------------------------------------------------------------------------------


def _check_order(events):
    assert [e["v"] for e in events] == list(range(1, len(events) + 1))
    for before, after in zip(events, events[1:], strict=False):
        assert after["from"] == before["to"]
        assert after["at"] >= before["at"]
    assert events[0]["from"] is None


def test_events_follow_the_path(api):
    deal = api.create()
    rv = api.events(deal["id"])
    assert rv.status_code == 200
    body = rv.get_json()
    assert body["deal_id"] == deal["id"]
    events = body["events"]
    _check_order(events)
    assert [e["type"] for e in events] == [
        "submitted", "verification_started", "verified", "offered_to_bank"]
    assert [e["to"] for e in events] == ["submitted", "verifying", "routing", "pending_bank"]
    assert events[0]["by"] == "exporter:91330200MA2AB1C2DJ"
    assert all(e["by"] == "worker" for e in events[1:])
    assert events[-1]["set"]["bank_id"] == "BOC-NB"
    assert len(events) == deal["version"]


def test_events_of_a_rejected_deal_say_why(api):
    deal = api.create(deal_body(invoices=[invoice("INV-HX-9999")]))
    events = api.events(deal["id"]).get_json()["events"]
    _check_order(events)
    assert [e["type"] for e in events] == ["submitted", "verification_started", "rejected"]
    assert events[-1]["why"] == ["SHIPMENT_NOT_DECLARED"]


def test_bank_view_of_events_hides_changes_and_other_banks(api):
    deal = api.create()
    api.decide(deal["id"], "boc", decision="decline", reason="no appetite", officer="wang")
    api.decide(deal["id"], "icbc", decision="approve", amount="70000.00", officer="li")
    full = api.events(deal["id"]).get_json()["events"]
    _check_order(full)
    assert [e["type"] for e in full] == [
        "submitted", "verification_started", "verified", "offered_to_bank", "declined",
        "offered_to_bank", "approved"]
    # The exporter reads which bank acted, never which of its officers.
    assert full[4]["by"] == "bank:BOC-NB" and full[4]["why"] == ["BANK_DECLINED"]
    assert full[6]["by"] == "bank:ICBC-NB"

    # ICBC holds the deal and reads the whole log, BOC's decline anonymised; BOC reads up to
    # its own decline and nothing after it.
    icbc = api.events(deal["id"], "icbc").get_json()["events"]
    assert [e["v"] for e in icbc] == [e["v"] for e in full]
    assert icbc[6]["by"] == "bank:ICBC-NB:li" and icbc[4]["by"] == "bank:other"
    boc = api.events(deal["id"], "boc").get_json()["events"]
    assert [e["v"] for e in boc] == [e["v"] for e in full[:5]]
    assert boc[4]["by"] == "bank:BOC-NB:wang"  # its own officer
    for events in (icbc, boc):
        assert all("set" not in e for e in events)
        assert "BOC-NB" not in str(events[5:]) and "ICBC-NB" not in str(events[:5])
