"""Relative dates in reference files: "today-14" becomes the ISO date, nothing else changes."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from tests.conftest import DEMO_FILE, DEMO_TODAY, demo_text
from workflow.demo import (
    expand_relative_dates,
    expand_relative_dates_json,
    resolve_relative_date,
)
from workflow.reference import ReferenceFileError, parse_reference_json

DAY = date(2027, 3, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("today", "2027-03-01"),
        ("today+0", "2027-03-01"),
        ("today-1", "2027-02-28"),
        ("today+365", "2028-02-29"),
        ("today-692", "2025-04-08"),
    ],
)
def test_relative_dates_resolve(value, expected):
    assert resolve_relative_date(value, DAY) == expected


@pytest.mark.parametrize(
    "value", ["Today", "today ", " today-1", "today-", "today+x", "today*2", "yesterday", ""]
)
def test_other_strings_are_no_relative_dates(value):
    assert resolve_relative_date(value, DAY) is None


def test_document_expansion_touches_only_date_fields():
    document = {
        "limits": [{"effective": "today-1", "expiry": "today+1", "buyer_name": "today"}],
        "name": "today's shipment",
        "n": 3,
    }
    assert expand_relative_dates(document, DAY) == {
        "limits": [{"effective": "2027-02-28", "expiry": "2027-03-02", "buyer_name": "today"}],
        "name": "today's shipment",
        "n": 3,
    }


def test_text_expansion_keeps_numbers_escapes_and_layout():
    text = (
        '{"start": "today-1",\n "r": 0.0420, "s": "say \\"today\\"", "t": "x\\\\",'
        ' "end" :  "today", "region": "today"}'
    )
    out = expand_relative_dates_json(text, DAY)
    assert out == (
        '{"start": "2027-02-28",\n "r": 0.0420, "s": "say \\"today\\"", "t": "x\\\\",'
        ' "end" :  "2027-03-01", "region": "today"}'
    )
    assert json.loads(out, parse_float=Decimal)["r"] == Decimal("0.0420")


def test_only_the_date_fields_of_the_schemas_are_expanded():
    """A buyer, region or id that reads "today" stays as written."""
    document = json.loads(demo_text(), parse_float=Decimal)
    document["limits"][0]["buyer_name"] = "today"
    document["exporters"][0]["region"] = "today+1"
    document["limits"][0]["effective"] = "today-3"
    text = json.dumps(document, default=str)
    data = parse_reference_json(expand_relative_dates_json(text, DAY))
    assert data.limits[0].buyer_name == "today"
    assert data.exporters[0].region == "today+1"
    assert data.limits[0].effective == date(2027, 2, 26)


@pytest.mark.parametrize(
    ("value", "today"), [("today-999999", DAY), ("today+999999", date(7300, 1, 1))]
)
def test_a_relative_date_outside_the_years_1_to_9999_is_a_problem_of_the_file(value, today):
    assert resolve_relative_date(value, today) is None
    document = json.loads(demo_text(), parse_float=Decimal)
    document["limits"][0]["effective"] = value
    text = expand_relative_dates_json(json.dumps(document, default=str), today)
    with pytest.raises(ReferenceFileError) as info:
        parse_reference_json(text)
    assert info.value.problems == [
        "limits[0] (limit_id=LIM-HX-DE0001).effective: Not a valid date: write YYYY-MM-DD, or"
        ' "today", "today-N" or "today+N" within the years 1-9999.'
    ]


def test_invalid_json_is_left_to_the_parser():
    assert expand_relative_dates_json('{"d": "today', DAY) == '{"d": "today'


def test_demo_file_holds_no_fixed_dates():
    """Every date of the demo is relative, so no day comes when it stops working."""
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    fixed = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")
        elif isinstance(node, str) and len(node) == 10 and node[4] == "-" and node[7] == "-":
            fixed.append(path)

    walk(document, "")
    assert fixed == []


def test_demo_on_the_tests_day_is_the_data_the_tests_expect():
    data = parse_reference_json(demo_text(DEMO_TODAY))
    haixin_de = [d for d in data.declarations if d.buyer_code == "DE-0001"]
    assert {d.shipment_date for d in haixin_de} == {date(2026, 11, 10)}
    assert data.policies[0].start == date(2026, 1, 1)
    assert data.policies[0].end == date(2030, 12, 31)


@pytest.mark.parametrize("today", [date(2027, 6, 1), date(2030, 1, 1), date(2041, 2, 28)])
def test_demo_is_in_force_on_any_day(today):
    data = parse_reference_json(demo_text(today))
    assert all(p.in_force_on(today) for p in data.policies)
    assert all(limit.in_force_on(today) for limit in data.limits)
    by_programme = {w.programme: w for w in data.whitelists}
    assert by_programme["NB-2026-TONGBAO"].active_on(today)
    assert not by_programme["SZ-2025-TONGBAO"].active_on(today)  # lapsed, as the demo says
