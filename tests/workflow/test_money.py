"""Money: wire strings only, two decimals, exact integer cents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workflow.money import (
    MAX_AMOUNT,
    MAX_CENTS,
    MoneyFormatError,
    floor_cents,
    fmt,
    from_cents,
    parse_amount,
    quantize,
    to_cents,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("125000.00", Decimal("125000.00")),
        ("125000", Decimal("125000")),
        ("0.5", Decimal("0.5")),
        ("0", Decimal("0")),
        ("999999999999.99", Decimal("999999999999.99")),  # MAX_AMOUNT: 12 integer digits
    ],
)
def test_parse_amount_accepts_plain_decimal_strings(raw, expected):
    value = parse_amount(raw)
    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize("raw", [125000.0, 0.1, 125000, 0, Decimal("1.00"), None, True])
def test_parse_amount_refuses_numbers(raw):
    with pytest.raises(MoneyFormatError, match="not a number"):
        parse_amount(raw)


@pytest.mark.parametrize(
    "raw",
    ["-1.00", "-0", "1.234", "0.001", "", " ", "1,000.00", "1e5", "NaN", "Infinity", "+1.00",
     ".50", "1.", " 1.00", "1.00 ", "1000000000000.00", "90071992547409.92", "0x10"],
)
def test_parse_amount_refuses_malformed_strings(raw):
    with pytest.raises(MoneyFormatError, match="non-negative decimal string"):
        parse_amount(raw)


@pytest.mark.parametrize("raw", ["100.00\n", "\uff11\uff12\uff13", " 100.00"])
def test_parse_amount_refuses_newlines_and_non_ascii_digits(raw):
    with pytest.raises(MoneyFormatError):
        parse_amount(raw)


def test_largest_amount_stays_exact_in_lua_doubles():
    # Every amount parse_amount accepts, and any sum the limit arithmetic forms of amounts up to
    # a limit's size, is below 2**53 cents: the store's Lua (doubles) adds them exactly.
    assert to_cents(MAX_AMOUNT) < MAX_CENTS == 2**53 - 1
    assert parse_amount(str(MAX_AMOUNT)) == MAX_AMOUNT
    assert 2 * to_cents(MAX_AMOUNT) < 2**53


def test_to_cents_refuses_what_lua_cannot_count_exactly():
    assert to_cents(Decimal("90071992547409.91")) == MAX_CENTS
    with pytest.raises(MoneyFormatError):
        to_cents(Decimal("90071992547409.92"))
    with pytest.raises(MoneyFormatError):
        to_cents(Decimal("-90071992547409.92"))


def test_money_format_error_is_a_value_error():
    assert issubclass(MoneyFormatError, ValueError)


@pytest.mark.parametrize(
    "amount", ["0.00", "0.01", "0.10", "1.00", "125000.00", "999999.99", "999999999999.99",
               "90071992547409.91"]
)
def test_cents_round_trip(amount):
    value = Decimal(amount)
    cents = to_cents(value)
    assert isinstance(cents, int)
    assert cents == int(value * 100)
    assert from_cents(cents) == value
    assert from_cents(str(cents)) == value
    assert fmt(from_cents(cents)) == amount


def test_to_cents_rounds_half_up():
    assert to_cents(Decimal("0.005")) == 1
    assert to_cents(Decimal("0.004")) == 0
    assert to_cents(Decimal("1.235")) == 124


def test_quantize_half_up_and_floor_cents_down():
    assert quantize(Decimal("2.345")) == Decimal("2.35")
    assert quantize(Decimal("2.344")) == Decimal("2.34")
    assert floor_cents(Decimal("2.349")) == Decimal("2.34")
    assert floor_cents(Decimal("72899.999")) == Decimal("72899.99")


def test_fmt_always_two_decimals():
    assert fmt(Decimal("5")) == "5.00"
    assert fmt(Decimal("5.1")) == "5.10"
    assert fmt(Decimal("1E+3")) == "1000.00"
    assert fmt(None) is None
