"""The small domain pieces: identifiers, the deal aggregate's encoding, settings, the gateway."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.conftest import DONGFANG, HAIXIN, NANHAI, make_application, make_invoice
from workflow.deal import (
    JSON_FIELDS,
    Deal,
    Invoice,
    application_fields,
    encode_fields,
    iso,
    rebuild,
)
from workflow.gateway import ReferenceDataInsurer
from workflow.identifiers import is_country, is_currency, uscc_problem
from workflow.reference import ReferenceRepository, store_reference
from workflow.settings import load_settings

# --- identifiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [HAIXIN, DONGFANG, NANHAI])
def test_demo_usccs_are_valid(code):
    assert uscc_problem(code) is None


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("91330200MA2AB1C2DK", "not a valid unified social credit code"),  # check character
        ("91330200MA2AB1C2D", "not a valid unified social credit code"),  # 17 characters
        ("", "not a valid unified social credit code"),
        ("91330200ma2ab1c2dj", "18 characters with no spaces"),
        ("91330200 MA2AB1C2DJ", "18 characters with no spaces"),
    ],
)
def test_bad_usccs_are_explained(code, why):
    problem = uscc_problem(code)
    assert problem is not None and why in problem


def test_currency_and_country_codes():
    assert is_currency("USD") and is_currency("CNY") and is_currency("EUR")
    assert not is_currency("usd") and not is_currency("XYZ") and not is_currency("US")
    assert is_country("DE") and is_country("CN")
    assert not is_country("de") and not is_country("ZZ") and not is_country("DEU")


# --- the deal aggregate ------------------------------------------------------------------------


def test_invoice_wire_round_trip():
    inv = make_invoice(amount="1234.5")
    wire = inv.to_wire()
    assert wire == {"number": "INV-HX-1001", "amount": "1234.50", "currency": "USD",
                    "issue_date": "2026-11-01", "shipment_date": "2026-11-10",
                    "due_date": "2027-01-09"}
    assert Invoice.from_wire(wire) == inv


def test_application_total_and_fields():
    app = make_application(invoices=[{"amount": "100.10"}, {"number": "B", "amount": "0.90"}])
    assert app.invoice_total == Decimal("101.00")
    fields = application_fields(app)
    assert fields["requested_amount"] == "80000.00"
    assert fields["buyer"] == {"code": "DE-0001", "name": "Müller Handels GmbH", "country": "DE"}
    assert [i["number"] for i in fields["invoices"]] == ["INV-HX-1001", "B"]


def test_fingerprint_is_stable_and_sensitive():
    assert make_application().fingerprint() == make_application().fingerprint()
    assert len(make_application().fingerprint()) == 32
    variants = [make_application(requested_amount="79999.99"), make_application(number="X"),
                make_application(due_date="2027-01-10"), make_application(policy_no="P")]
    prints = {v.fingerprint() for v in variants} | {make_application().fingerprint()}
    assert len(prints) == 5


def test_encode_fields():
    moment = datetime(2026, 11, 24, 17, 0, tzinfo=timezone(timedelta(hours=8)))
    encoded = encode_fields({
        "checks": {"b": "ok", "a": "ok"}, "amount": Decimal("1.5"), "at": moment,
        "day": date(2026, 11, 24), "n": 7, "gone": None, "text": "plain",
    })
    assert encoded == {"checks": '{"a":"ok","b":"ok"}', "amount": "1.50",
                       "at": "2026-11-24T09:00:00.000+00:00", "day": "2026-11-24", "n": "7",
                       "gone": "", "text": "plain"}
    assert {"checks", "invoices", "buyer", "offered_banks"} <= JSON_FIELDS


def test_iso_is_utc_with_milliseconds():
    assert iso(datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)) == \
        "2026-11-24T09:00:00.123+00:00"


def test_deal_accessors():
    deal = Deal({"id": "d", "state": "routing", "version": "3", "bank_id": "",
                 "offered_banks": '["A"]', "amount": "", **encode_fields(
                     application_fields(make_application()))})
    assert deal.version == 3 and deal.bank_id is None
    assert deal.offered_banks == ["A"]
    assert deal.decimal("amount") is None
    assert deal.application == make_application()
    assert Deal({"id": "x", "state": "submitted"}).version == 0


def test_rebuild_applies_events_in_order():
    events = [
        {"v": 1, "at": "t1", "to": "submitted", "set": {"id": "d", "a": "1"}},
        {"v": 2, "at": "t2", "to": "verifying", "set": {"a": "2"}},
        {"v": 3, "at": "t3", "to": "on_hold"},
    ]
    assert rebuild(events) == {"id": "d", "a": "2", "state": "on_hold", "version": "3",
                               "created_at": "t1", "updated_at": "t3", "state_at": "t3"}
    assert rebuild([]) == {}


# --- settings ----------------------------------------------------------------------------------


def test_settings_overrides_and_defaults(monkeypatch):
    monkeypatch.delenv("XINBAO_SWEEP_INTERVAL_SECONDS", raising=False)
    monkeypatch.delenv("XINBAO_INSURER_RETRY_LIMIT", raising=False)
    before = dict(os.environ)
    s = load_settings({"XINBAO_STALE_AFTER_SECONDS": "30", "XINBAO_HOLD_RETRY_SECONDS": "60",
                       "REDIS_URL": "redis://example:1/2"})
    assert s.stale_after_seconds == 30 and s.hold_retry_seconds == 60
    assert s.redis_url == "redis://example:1/2"
    assert s.broker_url == "redis://example:1/2"  # the broker defaults to the same Redis
    assert s.sweep_interval_seconds == 10.0 and s.insurer_retry_limit == 5
    assert dict(os.environ) == before  # the process environment is left as it was


def test_settings_fixture(settings):
    assert settings.stale_after_seconds == 30
    assert settings.hold_retry_seconds == 60


def test_bad_setting_raises_and_restores_the_environment():
    before = dict(os.environ)
    with pytest.raises(ValueError):
        load_settings({"XINBAO_STALE_AFTER_SECONDS": "soon"})
    assert dict(os.environ) == before


# --- the insurer gateway -------------------------------------------------------------------------


def test_reference_data_insurer(fake_redis, demo_reference):
    store_reference(fake_redis, demo_reference)
    insurer = ReferenceDataInsurer(ReferenceRepository(fake_redis))
    app = make_application(invoices=[{"number": "INV-HX-1001"}, {"number": "INV-HX-9999"}])
    facts = insurer.cover_facts(app)
    assert facts.policy.policy_no == "SIN-2026-0001"
    assert [lim.limit_id for lim in facts.limits] == ["LIM-HX-DE0001"]
    assert facts.declarations["INV-HX-1001"].declared_on == date(2026, 11, 12)
    assert facts.declarations["INV-HX-9999"] is None
    assert facts.overdues == []
    unknown = insurer.cover_facts(make_application(policy_no="SIN-NONE"))
    assert unknown.policy is None and unknown.limits == []
