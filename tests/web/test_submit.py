"""POST /api/v1/deals: acceptance, idempotency, validation, double financing, auth, media."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import (
    DONGFANG,
    HAIXIN,
    auth,
    deal_body,
    dongfang_body,
    error_of,
    invoice,
)
from workflow import keys
from workflow.store import DealStore

MONEY = re.compile(r"^\d{1,15}\.\d{2}$")


# --- accepted ---------------------------------------------------------------------------------


def test_accepted_with_location_that_reads_the_deal(api, fake_redis):
    rv = api.submit()
    assert rv.status_code == 202
    deal = rv.get_json()
    assert re.fullmatch(r"[0-9a-f]{20}", deal["id"])
    assert rv.headers["Location"] == f"/api/v1/deals/{deal['id']}"
    assert "Idempotent-Replayed" not in rv.headers
    # The 202 shows the deal as committed, before the (eager) worker moved it on.
    assert deal["state"] == "submitted"
    assert deal["version"] == 1
    assert deal["exporter_uscc"] == HAIXIN
    assert deal["policy_no"] == "SIN-2026-0001"
    assert deal["currency"] == "USD"
    assert deal["buyer"] == {"code": "DE-0001", "name": "Müller Handels GmbH", "country": "DE"}
    assert deal["invoices"] == [invoice("INV-HX-1001")]
    assert deal["amounts"]["requested"] == "80000.00"
    assert deal["amounts"]["invoice_total"] == "100000.00"
    assert deal["offered_banks"] == []

    got = api.client.get(rv.headers["Location"], headers=auth("haixin"))
    assert got.status_code == 200
    now = got.get_json()
    assert now["id"] == deal["id"]
    assert now["state"] == "pending_bank"
    assert isinstance(now["state"], str) and isinstance(now["version"], int)
    assert now["version"] == 4  # submitted, verification_started, verified, offered_to_bank
    assert now["amounts"] == {
        "requested": "80000.00", "invoice_total": "100000.00", "insured": "90000.00",
        "eligible": "80000.00", "approved": None, "reserved_on_limit": "100000.00",
    }
    for name, value in now["amounts"].items():
        assert value is None or MONEY.match(value), (name, value)
    assert now["bank"]["bank_id"] == "BOC-NB"
    assert now["offered_banks"] == ["BOC-NB"]

    stored = DealStore(fake_redis).get(deal["id"])
    assert stored is not None and stored.state == "pending_bank"
    assert fake_redis.zcard(keys.by_exporter(HAIXIN)) == 1


def test_amounts_are_strings_with_two_decimals(api):
    deal = api.create(deal_body(requested_amount="80000", invoices=[invoice(amount="100000.5")]))
    assert deal["amounts"]["requested"] == "80000.00"
    assert deal["amounts"]["invoice_total"] == "100000.50"
    assert deal["invoices"][0]["amount"] == "100000.50"


# --- idempotency ------------------------------------------------------------------------------


def test_idempotent_retry_returns_the_same_deal(api, fake_redis):
    first = api.submit(key="order-42")
    assert first.status_code == 202
    again = api.submit(key="order-42")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    # The replay shows the deal as it is now, not a new submission.
    assert again.get_json()["state"] == "pending_bank"
    listing = api.list("haixin").get_json()
    assert listing["total"] == 1
    assert [d["id"] for d in listing["items"]] == [first.get_json()["id"]]
    assert len(fake_redis.keys(keys.deal("*"))) == 1


def test_same_key_different_body_is_refused(api):
    first = api.submit(key="k-1")
    assert first.status_code == 202
    other = deal_body("INV-HX-1002")
    error = error_of(api.submit(other, key="k-1"), 409, "IDEMPOTENCY_KEY_REUSED")
    assert error["message"]
    assert api.list("haixin").get_json()["total"] == 1
    # The refused body's invoice was not locked: it goes through under a new key.
    assert api.submit(other, key="k-2").status_code == 202


def test_a_retry_with_the_same_amounts_written_differently_is_a_replay(api):
    first = api.submit(key="k-norm")
    body = deal_body(requested_amount="80000", invoices=[invoice(amount="100000.0")])
    again = api.submit(body, key="k-norm")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]


def test_a_retry_after_withdrawal_replays_the_withdrawn_deal(api):
    first = api.submit(key="k-w").get_json()
    assert api.withdraw(first["id"]).status_code == 200
    again = api.submit(key="k-w")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first["id"]
    assert again.get_json()["state"] == "withdrawn"
    assert api.list("haixin").get_json()["total"] == 1


def test_idempotency_keys_are_per_exporter(api):
    assert api.submit(key="shared").status_code == 202
    rv = api.submit(dongfang_body(), who="dongfang", key="shared")
    assert rv.status_code == 202
    assert "Idempotent-Replayed" not in rv.headers


@pytest.mark.parametrize("key", ["", "x" * 129])
def test_idempotency_key_length_is_checked(api, key):
    error = error_of(api.submit(key=key), 422, "VALIDATION_FAILED")
    assert "Idempotency-Key" in error["fields"]
    assert api.list("haixin").get_json()["total"] == 0


# --- validation -------------------------------------------------------------------------------


def _inv(**overrides):
    return [invoice(**overrides)]


INVALID = [
    pytest.param({"exporter_uscc": "91330200MA2AB1C2D0"}, "exporter_uscc", id="uscc-check-char"),
    pytest.param({"exporter_uscc": "91330200"}, "exporter_uscc", id="uscc-short"),
    pytest.param({"currency": "XYZ", "invoices": _inv(currency="XYZ")}, "currency",
                 id="unknown-currency"),
    pytest.param({"invoices": _inv(amount="-100.00")}, "invoices[0].amount", id="negative"),
    pytest.param({"requested_amount": "0.00"}, "requested_amount", id="zero"),
    pytest.param({"invoices": _inv(amount=100000.0)}, "invoices[0].amount", id="float"),
    pytest.param({"invoices": _inv(amount=100000)}, "invoices[0].amount", id="int"),
    pytest.param({"requested_amount": 80000}, "requested_amount", id="int-requested"),
    pytest.param({"invoices": _inv(amount="100000.001")}, "invoices[0].amount",
                 id="three-decimals"),
    pytest.param({"requested_amount": "1e5"}, "requested_amount", id="exponent"),
    pytest.param({"invoices": _inv(due_date="2026-11-09")}, "invoices[0].due_date",
                 id="due-before-shipment"),
    pytest.param({"invoices": _inv(due_date="2026-11-10")}, "invoices[0].due_date",
                 id="due-equals-shipment"),
    pytest.param({"invoices": _inv(shipment_date="2026-13-01")}, "invoices[0].shipment_date",
                 id="bad-date"),
    pytest.param({"invoices": []}, "invoices", id="no-invoices"),
    pytest.param({"invoices": [invoice("INV-HX-1001"), invoice("INV-HX-1002", currency="EUR")]},
                 "invoices[1].currency", id="mixed-currencies"),
    pytest.param({"invoices": [invoice("INV-HX-1001"), invoice("INV-HX-1001")]},
                 "invoices[1].number", id="duplicate-invoice"),
    pytest.param({"requested_amount": "100000.01"}, "requested_amount", id="above-total"),
    pytest.param({"buyer": {"code": "DE-0001", "name": "Müller", "country": "XX"}},
                 "buyer.country", id="unknown-country"),
    pytest.param({"buyer": {"code": "DE-0001", "name": "Müller", "country": "DEU"}},
                 "buyer.country", id="alpha3-country"),
    pytest.param({"policy_no": ""}, "policy_no", id="empty-policy"),
    pytest.param({"surprise": 1}, "surprise", id="unknown-field"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID)
def test_invalid_field_is_named(api, fake_redis, overrides, field):
    error = error_of(api.submit(deal_body(**overrides)), 422, "VALIDATION_FAILED")
    assert field in error["fields"], error
    assert field in error["message"]
    # Nothing was written: no deal, no lock, no index entry.
    assert fake_redis.keys("xb:deal:*") == []
    assert fake_redis.keys("xb:recv:*") == []
    assert fake_redis.keys("xb:idx:*") == []


@pytest.mark.parametrize("missing", ["exporter_uscc", "policy_no", "buyer", "invoices",
                                     "requested_amount", "currency"])
def test_missing_field_is_named(api, missing):
    body = deal_body()
    del body[missing]
    error = error_of(api.submit(body), 422, "VALIDATION_FAILED")
    assert missing in error["fields"]


def test_missing_nested_fields_are_named(api):
    inv = invoice()
    del inv["due_date"]
    body = deal_body(buyer={"code": "DE-0001", "country": "DE"}, invoices=[inv])
    error = error_of(api.submit(body), 422, "VALIDATION_FAILED")
    assert {"buyer.name", "invoices[0].due_date"} <= set(error["fields"])


def test_every_bad_field_is_named_at_once(api):
    body = deal_body(
        exporter_uscc="91330200MA2AB1C2D0",
        currency="XYZ",
        requested_amount=5,
        buyer={"code": "DE-0001", "name": "Müller", "country": "ZZ"},
        invoices=[invoice(amount=100.5, due_date="2026-11-01"),
                  invoice("INV-HX-1002", amount="1.234")],
    )
    error = error_of(api.submit(body), 422, "VALIDATION_FAILED")
    expected = {"exporter_uscc", "currency", "requested_amount", "buyer.country",
                "invoices[0].amount", "invoices[0].due_date", "invoices[1].amount"}
    assert expected <= set(error["fields"]), error["fields"]
    for name in expected:
        assert name in error["message"]


def test_a_json_array_body_is_422(api):
    rv = api.client.post("/api/v1/deals", json=[deal_body()], headers=auth("haixin"))
    error = error_of(rv, 422, "VALIDATION_FAILED")
    assert "_body" in error["fields"]


def test_a_deeply_nested_body_is_400_not_500(api):
    rv = api.client.post("/api/v1/deals", data="[" * 100000, content_type="application/json",
                         headers=auth("haixin"))
    error_of(rv, 400, "MALFORMED_JSON")


def test_an_oversized_body_is_413(api):
    rv = api.client.post("/api/v1/deals", data=b"{" + b" " * 300_000 + b"}",
                         content_type="application/json", headers=auth("haixin"))
    error_of(rv, 413)


def test_a_json_null_body_is_422_not_malformed(api):
    rv = api.client.post("/api/v1/deals", data="null", content_type="application/json",
                         headers=auth("haixin"))
    error_of(rv, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("data", ["{", '{"exporter_uscc": }', "", "\xff"])
def test_malformed_json_is_400(api, data):
    rv = api.client.post("/api/v1/deals", data=data, content_type="application/json",
                         headers=auth("haixin"))
    error_of(rv, 400, "MALFORMED_JSON")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_non_json_content_type_is_415(api, content_type):
    import json

    kwargs = {"content_type": content_type} if content_type else {}
    rv = api.client.post("/api/v1/deals", data=json.dumps(deal_body()), headers=auth("haixin"),
                         **kwargs)
    error_of(rv, 415, "UNSUPPORTED_MEDIA_TYPE")


# --- double financing -------------------------------------------------------------------------


def test_invoice_in_a_live_deal_is_refused_until_withdrawn(api, fake_redis):
    first = api.create()
    second = deal_body("INV-HX-1002", "INV-HX-1001", requested_amount="150000.00")
    error = error_of(api.submit(second), 409, "DUPLICATE_RECEIVABLE")
    assert "INV-HX-1001" in error["message"]
    assert "invoices" in error["fields"]
    # The refused deal locked nothing: INV-HX-1002 is still free.
    store = DealStore(fake_redis)
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1002") is None
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") == first["id"]
    assert api.list("haixin").get_json()["total"] == 1

    assert api.withdraw(first["id"]).status_code == 200
    again = api.submit(second)
    assert again.status_code == 202
    assert api.get(again.get_json()["id"]).get_json()["state"] == "pending_bank"


def test_invoice_of_a_rejected_deal_is_free_again(api):
    rejected = api.create(deal_body(requested_amount="50000.00",
                                    invoices=[invoice(amount="100000.00",
                                                      due_date="2027-06-30")]))
    assert rejected["state"] == "rejected"
    assert api.submit().status_code == 202


def test_same_invoice_number_for_another_buyer_is_another_receivable(api):
    api.create()
    other_buyer = deal_body(buyer={"code": "US-0042", "name": "Acme Imports Inc.",
                                   "country": "US"})
    assert api.submit(other_buyer).status_code == 202


# --- authentication and authorisation --------------------------------------------------------


def test_another_exporters_uscc_is_403(api, fake_redis):
    error = error_of(api.submit(deal_body(exporter_uscc=DONGFANG)), 403, "FORBIDDEN")
    assert "exporter_uscc" in error["fields"]
    assert fake_redis.keys("xb:deal:*") == []


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz",
                                    "Bearer not-a-token", "Token demo-exporter-haixin-0001"])
def test_no_or_bad_token_is_401_with_challenge(client, header):
    headers = {"Authorization": header} if header is not None else {}
    rv = client.post("/api/v1/deals", json=deal_body(), headers=headers)
    error_of(rv, 401, "UNAUTHENTICATED")
    assert rv.headers["WWW-Authenticate"].startswith("Bearer")


def test_scheme_is_case_insensitive(client):
    rv = client.post("/api/v1/deals", json=deal_body(),
                     headers={"Authorization": "bearer demo-exporter-haixin-0001"})
    assert rv.status_code == 202


def test_bank_token_may_not_submit(api, fake_redis):
    error_of(api.submit(who="boc"), 403, "FORBIDDEN")
    assert fake_redis.keys("xb:deal:*") == []


def test_auth_is_checked_before_the_body(client):
    rv = client.post("/api/v1/deals", data="{", content_type="application/json")
    error_of(rv, 401, "UNAUTHENTICATED")
