"""Routing: which banks may take a deal, in which order, for how much."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.conftest import DEMO_TODAY
from workflow.reasons import Reason
from workflow.reference import Bank
from workflow.routing import (
    RoutingInput,
    bank_amount_in_range,
    bank_takes_currency,
    bank_tenor_allowed,
    bank_whitelist_satisfied,
    financeable_amount,
    next_offer,
    price,
    route_order,
)


def bank(bank_id="B", **overrides) -> Bank:
    base = Bank(
        bank_id=bank_id, name=f"Bank {bank_id}", currencies=("USD", "EUR"),
        min_amount=Decimal("10000.00"), max_amount=Decimal("5000000.00"), max_tenor_days=180,
        advance_rate=Decimal("0.90"), annual_rate=Decimal("0.0420"), requires_whitelist=False,
        decision_hours=Decimal("24"),
    )
    return dataclasses.replace(base, **overrides)


def deal(**overrides) -> RoutingInput:
    base = RoutingInput(
        currency="USD", requested_amount=Decimal("80000.00"),
        insured_amount=Decimal("90000.00"), latest_due=DEMO_TODAY + timedelta(days=60),
        today=DEMO_TODAY, whitelisted=True, max_credit_days=180,
    )
    return dataclasses.replace(base, **overrides)


def ids(banks) -> list[str]:
    return [b.bank_id for b in banks]


# --- order -------------------------------------------------------------------------------------


def test_cheapest_rate_first():
    banks = [bank("C", annual_rate=Decimal("0.048")), bank("A", annual_rate=Decimal("0.042")),
             bank("B", annual_rate=Decimal("0.045"))]
    assert ids(route_order(banks)) == ["A", "B", "C"]


def test_same_rate_higher_advance_rate_first():
    banks = [bank("A", advance_rate=Decimal("0.80")), bank("B", advance_rate=Decimal("0.90"))]
    assert ids(route_order(banks)) == ["B", "A"]


def test_same_rate_and_advance_by_bank_id():
    banks = [bank("ZB"), bank("AB"), bank("MB")]
    assert ids(route_order(banks)) == ["AB", "MB", "ZB"]


def test_rate_compared_as_decimal_not_text():
    banks = [bank("A", annual_rate=Decimal("0.1")), bank("B", annual_rate=Decimal("0.05"))]
    assert ids(route_order(banks)) == ["B", "A"]


def test_demo_banks_order(demo_reference):
    assert ids(route_order(demo_reference.banks)) == ["BOC-NB", "ICBC-NB", "CCB-NB"]


# --- financeable amount ------------------------------------------------------------------------


def test_financeable_is_insured_times_advance_rate_when_less_than_asked():
    # 90,000 x 0.85 = 76,500 < 80,000 asked.
    assert financeable_amount(bank(advance_rate=Decimal("0.85")), deal()) == Decimal("76500.00")


def test_financeable_never_more_than_asked():
    assert financeable_amount(bank(advance_rate=Decimal("0.95")), deal()) == Decimal("80000.00")


def test_financeable_floored_to_cents():
    # 33,333.33 x 0.85 = 28,333.3305 -> 28,333.33 (down), and 0.0099 of a cent never rounds up.
    d = deal(insured_amount=Decimal("33333.33"), requested_amount=Decimal("50000.00"))
    assert financeable_amount(bank(advance_rate=Decimal("0.85")), d) == Decimal("28333.33")
    d = deal(insured_amount=Decimal("11111.11"), requested_amount=Decimal("50000.00"))
    assert financeable_amount(bank(advance_rate=Decimal("0.89")), d) == Decimal("9888.88")


# --- each bank check ----------------------------------------------------------------------------


def test_currency_check():
    assert bank_takes_currency(bank(currencies=("USD",)), deal()) is None
    assert bank_takes_currency(bank(currencies=("CNY",)), deal()) == \
        Reason.BANK_CURRENCY_UNSUPPORTED


@pytest.mark.parametrize(
    ("min_amount", "max_amount", "expected"),
    [
        ("10000.00", "5000000.00", None),
        ("80000.00", "80000.00", None),  # bounds inclusive
        ("80000.01", "5000000.00", Reason.BANK_AMOUNT_OUT_OF_RANGE),
        ("10000.00", "79999.99", Reason.BANK_AMOUNT_OUT_OF_RANGE),
    ],
)
def test_amount_range_check(min_amount, max_amount, expected):
    b = bank(min_amount=Decimal(min_amount), max_amount=Decimal(max_amount))
    assert bank_amount_in_range(b, deal()) == expected


def test_amount_range_uses_the_financeable_amount():
    # Asked 80,000 but only 45,000 financeable at 50%: below a 50,000 minimum.
    b = bank(advance_rate=Decimal("0.50"), min_amount=Decimal("50000.00"))
    assert bank_amount_in_range(b, deal()) == Reason.BANK_AMOUNT_OUT_OF_RANGE


def test_zero_financeable_amount_is_out_of_range():
    b = bank(min_amount=Decimal("0"))
    assert bank_amount_in_range(b, deal(insured_amount=Decimal("0"))) == \
        Reason.BANK_AMOUNT_OUT_OF_RANGE


def test_tenor_check_bank_maximum():
    b = bank(max_tenor_days=120)
    assert bank_tenor_allowed(b, deal(latest_due=DEMO_TODAY + timedelta(days=120))) is None
    assert bank_tenor_allowed(b, deal(latest_due=DEMO_TODAY + timedelta(days=121))) == \
        Reason.BANK_TENOR_EXCEEDED


def test_tenor_above_180_needs_a_long_credit_policy():
    b = bank(max_tenor_days=360)
    long = DEMO_TODAY + timedelta(days=200)
    assert bank_tenor_allowed(b, deal(latest_due=long, max_credit_days=180)) == \
        Reason.BANK_TENOR_EXCEEDED
    assert bank_tenor_allowed(b, deal(latest_due=long, max_credit_days=270)) is None
    assert bank_tenor_allowed(bank(max_tenor_days=180), deal(latest_due=long,
                                                              max_credit_days=270)) == \
        Reason.BANK_TENOR_EXCEEDED


def test_tenor_is_days_from_today_to_the_latest_due_date():
    assert deal().tenor_days == 60
    assert deal(latest_due=DEMO_TODAY - timedelta(days=3)).tenor_days == 0


def test_whitelist_check():
    strict = bank(requires_whitelist=True)
    assert bank_whitelist_satisfied(strict, deal(whitelisted=True)) is None
    assert bank_whitelist_satisfied(strict, deal(whitelisted=False)) == \
        Reason.EXPORTER_NOT_WHITELISTED
    assert bank_whitelist_satisfied(bank(), deal(whitelisted=False)) is None


# --- next offer ---------------------------------------------------------------------------------


def test_next_offer_is_the_cheapest_eligible_bank():
    banks = [bank("CHEAP-CNY", annual_rate=Decimal("0.030"), currencies=("CNY",)),
             bank("CHEAP-WL", annual_rate=Decimal("0.035"), requires_whitelist=True),
             bank("MID", annual_rate=Decimal("0.040")),
             bank("DEAR", annual_rate=Decimal("0.050"))]
    offer, passed_over = next_offer(banks, deal(whitelisted=False), [])
    assert offer is not None and offer.bank_id == "MID"
    assert passed_over == {"CHEAP-CNY": "BANK_CURRENCY_UNSUPPORTED",
                           "CHEAP-WL": "EXPORTER_NOT_WHITELISTED"}


def test_already_offered_banks_are_skipped_and_not_reported():
    banks = [bank("A", annual_rate=Decimal("0.03")), bank("B", annual_rate=Decimal("0.04")),
             bank("C", annual_rate=Decimal("0.05"))]
    offer, passed_over = next_offer(banks, deal(), ["A", "B"])
    assert offer.bank_id == "C"
    assert passed_over == {}


def test_no_bank_left():
    banks = [bank("A"), bank("B", currencies=("CNY",))]
    offer, passed_over = next_offer(banks, deal(), ["A"])
    assert offer is None
    assert passed_over == {"B": "BANK_CURRENCY_UNSUPPORTED"}
    assert next_offer([], deal(), []) == (None, {})


def test_passed_over_reports_the_first_failing_check():
    # Wrong currency and too small: currency is checked first.
    b = bank("X", currencies=("CNY",), min_amount=Decimal("1000000.00"))
    assert next_offer([b], deal(), [])[1] == {"X": "BANK_CURRENCY_UNSUPPORTED"}


def test_price():
    b = bank("BOC-NB", advance_rate=Decimal("0.90"), annual_rate=Decimal("0.0420"),
             decision_hours=Decimal("24"))
    d = deal(latest_due=date(2027, 1, 9))  # 46 days after 2026-11-24
    offer = price(b, d)
    assert offer.amount == Decimal("80000.00")
    assert offer.tenor_days == 46
    # 80,000 x 4.2% x 46 / 360 = 429.333... -> 429.33
    assert offer.interest == Decimal("429.33")
    assert offer.to_wire() == {"bank_id": "BOC-NB", "amount": "80000.00", "advance_rate": "0.90",
                               "annual_rate": "0.0420", "tenor_days": 46, "interest": "429.33"}
