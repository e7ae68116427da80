"""The cover checks, one reason code at a time, on plain domain objects (no Redis)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY, DONGFANG, HAIXIN, make_application, make_invoice
from workflow.checks import (
    INVOICE_CHECKS,
    CoverFacts,
    choose_limit,
    limit_room,
    verify_cover,
    whitelist_status,
)
from workflow.deal import Buyer
from workflow.reasons import DESCRIPTIONS, Reason
from workflow.reference import BuyerLimit, Declaration, Overdue, Policy, Whitelist

TODAY = DEMO_TODAY  # 2026-11-24
SHIPPED = date(2026, 11, 10)


def policy(**overrides) -> Policy:
    base = Policy(
        policy_no="SIN-2026-0001", exporter_uscc=HAIXIN, status="active",
        start=date(2026, 1, 1), end=date(2030, 12, 31), coverage_ratio=Decimal("0.90"),
        premium_paid=True, declaration_window_days=15, max_credit_days=180,
        excluded_countries=("KP", "IR"),
    )
    return dataclasses.replace(base, **overrides)


def limit(**overrides) -> BuyerLimit:
    base = BuyerLimit(
        limit_id="LIM-HX-DE0001", policy_no="SIN-2026-0001", buyer_code="DE-0001",
        buyer_name="Müller Handels GmbH", country="DE", currency="USD",
        amount=Decimal("500000.00"), max_credit_days=120, effective=date(2026, 1, 15),
        expiry=date(2030, 12, 31), status="active",
    )
    return dataclasses.replace(base, **overrides)


def declared(number="INV-HX-1001", shipment=SHIPPED, on=None) -> Declaration:
    """The insurer's record of a declaration, by default made two days after shipment."""
    return Declaration("SIN-2026-0001", "DE-0001", number, shipment,
                       on or shipment + timedelta(days=2))


def facts(app=None, *, pol="default", limits=None, declarations=None, overdues=()) -> CoverFacts:
    app = app or make_application()
    if declarations is None:
        declarations = {inv.number: declared(inv.number, inv.shipment_date) for inv in app.invoices}
    return CoverFacts(
        policy=policy() if pol == "default" else pol,
        limits=[limit()] if limits is None else limits,
        declarations=declarations,
        overdues=list(overdues),
    )


def reasons(app=None, today=TODAY, **kw) -> list[str]:
    app = app or make_application()
    return verify_cover(app, facts(app, **kw), today).reasons


# --- the baseline ----------------------------------------------------------------------------


def test_clean_application_passes_every_check():
    app = make_application()
    verdict = verify_cover(app, facts(app), TODAY)
    assert verdict.passed
    assert verdict.reasons == [] and verdict.failures == []
    assert verdict.limit == limit()
    assert verdict.checks == {check.__name__: "ok" for check in INVOICE_CHECKS}


def test_every_reason_has_a_description():
    assert set(DESCRIPTIONS) == set(Reason)
    assert all(str(r) == r.name for r in Reason)


# --- one test per reason code ---------------------------------------------------------------------


def test_policy_not_found():
    assert reasons(pol=None) == [Reason.POLICY_NOT_FOUND]


def test_policy_of_another_exporter_is_not_found():
    # Not POLICY_INACTIVE / PREMIUM_UNPAID etc.: nothing about a stranger's policy leaks out.
    other = policy(exporter_uscc=DONGFANG, status="cancelled", premium_paid=False,
                   covered_countries=("GB",), excluded_countries=())
    assert reasons(pol=other) == [Reason.POLICY_NOT_FOUND]


@pytest.mark.parametrize(
    "change",
    [{"status": "suspended"}, {"status": "cancelled"}, {"start": date(2026, 11, 11)},
     {"end": date(2026, 11, 9)}],
)
def test_policy_inactive_on_the_shipment_date(change):
    assert reasons(pol=policy(**change)) == [Reason.POLICY_INACTIVE]


def test_policy_in_force_judged_on_the_shipment_date_not_today():
    # Expired since, but in force when the goods shipped: still covered.
    assert reasons(pol=policy(end=SHIPPED)) == []


def test_premium_unpaid():
    assert reasons(pol=policy(premium_paid=False)) == [Reason.PREMIUM_UNPAID]


def test_limit_not_found():
    assert reasons(limits=[]) == [Reason.LIMIT_NOT_FOUND]


@pytest.mark.parametrize(
    "change",
    [{"status": "suspended"}, {"status": "expired"}, {"expiry": TODAY - timedelta(days=1)},
     {"effective": TODAY + timedelta(days=1)}],
)
def test_limit_inactive(change):
    # Shipped after today's date so only the limit's own dates and status are in question.
    app = make_application(shipment_date=TODAY + timedelta(days=2), due_date="2027-02-01")
    assert reasons(app, limits=[limit(**change)]) == [Reason.LIMIT_INACTIVE]


def test_currency_mismatch():
    app = make_application(currency="EUR", amount="100000.00")
    assert app.invoices[0].currency == "EUR"
    assert reasons(app) == [Reason.CURRENCY_MISMATCH]


def test_credit_period_exceeded_by_the_limit():
    # The limit allows 120 days, the policy 180: the stricter one applies.
    ok = make_application(due_date=SHIPPED + timedelta(days=120))
    late = make_application(due_date=SHIPPED + timedelta(days=121))
    assert reasons(ok) == []
    assert reasons(late) == [Reason.CREDIT_PERIOD_EXCEEDED]


def test_credit_period_exceeded_by_the_policy():
    app = make_application(due_date=SHIPPED + timedelta(days=91))
    assert reasons(app, pol=policy(max_credit_days=90)) == [Reason.CREDIT_PERIOD_EXCEEDED]


def test_shipment_before_limit():
    app = make_application(shipment_date="2026-10-25", due_date="2027-01-20")
    lim = limit(effective=date(2026, 11, 1))
    assert reasons(app, limits=[lim]) == [Reason.SHIPMENT_BEFORE_LIMIT]
    on_the_day = make_application(shipment_date="2026-11-01", due_date="2027-01-20")
    assert reasons(on_the_day, limits=[lim]) == []


def test_shipment_not_declared():
    assert reasons(declarations={}) == [Reason.SHIPMENT_NOT_DECLARED]
    assert reasons(declarations={"INV-HX-1001": None}) == [Reason.SHIPMENT_NOT_DECLARED]


def test_declaration_late():
    # Window 15 days from shipment (Nov 10): Nov 25 is in time, Nov 26 is late.
    in_time = {"INV-HX-1001": declared(on=date(2026, 11, 25))}
    late = {"INV-HX-1001": declared(on=date(2026, 11, 26))}
    assert reasons(declarations=in_time, today=date(2026, 11, 27)) == []
    assert reasons(declarations=late, today=date(2026, 11, 27)) == [Reason.DECLARATION_LATE]


def test_declaration_late_judged_on_the_declared_shipment_date():
    # The insurer recorded shipment on Oct 1 and the declaration on Nov 12: 42 days late.
    app = make_application(shipment_date="2026-11-10")
    record = {"INV-HX-1001": declared(shipment=date(2026, 10, 1), on=date(2026, 11, 12))}
    assert Reason.DECLARATION_LATE in reasons(app, declarations=record)
    assert Reason.SHIPMENT_DATE_MISMATCH in reasons(app, declarations=record)


def test_invoice_shipment_date_must_match_the_declaration():
    app = make_application(shipment_date="2026-11-10")
    record = {"INV-HX-1001": declared(shipment=date(2026, 11, 9), on=date(2026, 11, 12))}
    assert reasons(app, declarations=record) == [Reason.SHIPMENT_DATE_MISMATCH]


@pytest.mark.parametrize("due", [TODAY, TODAY - timedelta(days=1)])
def test_matured_receivable_is_not_financed(due):
    app = make_application(shipment_date="2026-11-10", due_date=due.isoformat())
    assert reasons(app, today=TODAY) == [Reason.RECEIVABLE_MATURED]


def test_buyer_overdue():
    overdue = Overdue("SIN-2026-0001", "DE-0001", date(2026, 10, 1))
    assert reasons(overdues=[overdue]) == [Reason.BUYER_OVERDUE]


def test_buyer_overdue_reported_after_today_not_yet_counted():
    overdue = Overdue("SIN-2026-0001", "DE-0001", TODAY + timedelta(days=1))
    assert reasons(overdues=[overdue]) == []


def test_country_excluded():
    app = make_application(buyer=Buyer("KP-0001", "Pyongyang Trading", "KP"))
    assert reasons(app, limits=[limit(buyer_code="KP-0001", country="KP")]) == [
        Reason.COUNTRY_EXCLUDED]


def test_country_not_in_covered_list():
    covered = policy(covered_countries=("GB", "FR"), excluded_countries=())
    assert reasons(pol=covered) == [Reason.COUNTRY_EXCLUDED]
    assert reasons(pol=policy(covered_countries=("DE",), excluded_countries=())) == []


def test_buyer_mismatch():
    app = make_application(buyer=Buyer("DE-0001", "Müller Handels GmbH", "AT"))
    assert reasons(app) == [Reason.BUYER_MISMATCH]


def test_limit_recorded_for_another_buyer_code_is_a_buyer_mismatch():
    # A stale (policy, buyer) lookup entry pointing at a limit the insurer moved elsewhere.
    assert reasons(limits=[limit(buyer_code="DE-0002")]) == [Reason.BUYER_MISMATCH]


def test_the_limit_of_the_applications_buyer_is_chosen_before_a_stale_one():
    stale = limit(limit_id="LIM-STALE", buyer_code="DE-0002")
    app = make_application()
    assert choose_limit(app, [stale, limit()], TODAY) == limit()
    assert reasons(limits=[stale, limit()]) == []


def test_limit_of_another_policy_is_not_found():
    assert reasons(limits=[limit(policy_no="SIN-2026-0002")]) == [Reason.LIMIT_NOT_FOUND]


def test_buyer_name_differing_is_a_warning_not_a_failure():
    app = make_application(buyer=Buyer("DE-0001", "Mueller Trading", "DE"))
    verdict = verify_cover(app, facts(app), TODAY)
    assert verdict.passed
    assert verdict.warnings == [{"code": "BUYER_NAME_MISMATCH", "stated_name": "Mueller Trading",
                                 "insurer_name": "Müller Handels GmbH"}]


@pytest.mark.parametrize("name", ["Müller Handels GmbH", "  MÜLLER   handels gmbh ",
                                  "Mu\u0308ller Handels GmbH"])
def test_buyer_name_differing_only_in_case_spacing_or_form_is_no_warning(name):
    app = make_application(buyer=Buyer("DE-0001", name, "DE"))
    assert verify_cover(app, facts(app), TODAY).warnings == []


def test_no_name_warning_for_a_limit_of_another_buyer():
    app = make_application(buyer=Buyer("DE-0001", "Someone Else", "DE"))
    verdict = verify_cover(app, facts(app, limits=[limit(buyer_code="DE-0002")]), TODAY)
    assert verdict.reasons == [Reason.BUYER_MISMATCH] and verdict.warnings == []


# --- several invoices, several failures ---------------------------------------------------------


def test_every_failure_is_reported_per_invoice_and_reasons_deduplicated():
    app = make_application(invoices=[
        {"number": "INV-HX-1001"},
        {"number": "INV-HX-1002", "due_date": "2027-06-30"},
        {"number": "INV-HX-1003", "currency": "EUR"},
    ])
    fx = facts(app, declarations={"INV-HX-1001": declared("INV-HX-1001")}, pol=policy(
        premium_paid=False))
    verdict = verify_cover(app, fx, TODAY)
    assert not verdict.passed
    assert verdict.reasons == [
        Reason.PREMIUM_UNPAID, Reason.CREDIT_PERIOD_EXCEEDED, Reason.SHIPMENT_NOT_DECLARED,
        Reason.CURRENCY_MISMATCH]
    failed = {(f["invoice"], f["reason"]) for f in verdict.failures}
    assert failed == {
        ("INV-HX-1001", "PREMIUM_UNPAID"), ("INV-HX-1002", "PREMIUM_UNPAID"),
        ("INV-HX-1003", "PREMIUM_UNPAID"), ("INV-HX-1002", "CREDIT_PERIOD_EXCEEDED"),
        ("INV-HX-1002", "SHIPMENT_NOT_DECLARED"), ("INV-HX-1003", "SHIPMENT_NOT_DECLARED"),
        ("INV-HX-1003", "CURRENCY_MISMATCH"),
    }
    assert verdict.checks["premium_paid"] == "PREMIUM_UNPAID"
    assert verdict.checks["currency_matches"] == "CURRENCY_MISMATCH"
    assert verdict.checks["policy_found"] == "ok"


def test_missing_policy_and_limit_do_not_cascade():
    app = make_application()
    verdict = verify_cover(app, facts(app, pol=None, limits=[]), TODAY)
    assert verdict.reasons == [Reason.POLICY_NOT_FOUND, Reason.LIMIT_NOT_FOUND]
    assert verdict.limit is None


# --- choosing the limit ------------------------------------------------------------------------


def test_choose_limit_prefers_in_force_in_the_currency():
    app = make_application()
    eur = limit(limit_id="A-EUR", currency="EUR")
    lapsed_usd = limit(limit_id="B-USD-OLD", status="expired")
    usd = limit(limit_id="C-USD")
    assert choose_limit(app, [eur, lapsed_usd, usd], TODAY) == usd
    assert choose_limit(app, [eur, lapsed_usd], TODAY) == eur
    assert choose_limit(app, [lapsed_usd], TODAY) == lapsed_usd
    assert choose_limit(app, [], TODAY) is None


def test_limit_room():
    lim = limit(amount=Decimal("500000.00"))
    assert limit_room(lim, Decimal("120000.00")) == Decimal("380000.00")
    assert limit_room(lim, Decimal("600000.00")) == Decimal("0")


# --- whitelists ---------------------------------------------------------------------------------


def whitelist(programme, valid_from, valid_to) -> Whitelist:
    return Whitelist(programme, "Ningbo", date.fromisoformat(valid_from),
                     date.fromisoformat(valid_to))


def test_whitelist_active():
    status = whitelist_status([whitelist("NB", "2026-01-01", "2026-12-31")], TODAY)
    assert status.whitelisted and status.reason is None
    assert status.programmes == ("NB",)
    assert status.to_wire() == {"whitelisted": True, "reason": None, "programmes": ["NB"]}


def test_whitelist_valid_to_is_inclusive():
    assert whitelist_status([whitelist("NB", "2026-01-01", "2026-11-24")], TODAY).whitelisted


def test_whitelist_expired():
    status = whitelist_status([whitelist("SZ", "2025-01-01", "2025-12-31")], TODAY)
    assert not status.whitelisted
    assert status.reason == Reason.WHITELIST_EXPIRED
    assert status.to_wire() == {"whitelisted": False, "reason": "WHITELIST_EXPIRED",
                                "programmes": ["SZ"]}


def test_whitelist_active_one_wins_over_expired_one():
    lists = [whitelist("SZ", "2025-01-01", "2025-12-31"), whitelist("NB", "2026-01-01",
                                                                     "2030-12-31")]
    status = whitelist_status(lists, TODAY)
    assert status.whitelisted and status.programmes == ("NB",)


def test_not_whitelisted():
    status = whitelist_status([], TODAY)
    assert status.reason == Reason.EXPORTER_NOT_WHITELISTED
    assert status.programmes == ()


def test_whitelist_not_yet_valid_is_not_whitelisted():
    status = whitelist_status([whitelist("NB-2027", "2027-01-01", "2027-12-31")], TODAY)
    assert status.reason == Reason.EXPORTER_NOT_WHITELISTED


def test_make_invoice_defaults_are_the_demo_declaration():
    inv = make_invoice()
    assert (inv.number, inv.shipment_date, inv.amount) == ("INV-HX-1001", SHIPPED,
                                                           Decimal("100000.00"))
