"""The customs export records feed: CSV in UTF-8 or GB18030, Chinese or English headers, bad
rows reported by line, records merged by declaration number (or replaced whole)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.conftest import DONGFANG, HAIXIN
from workflow import keys
from workflow.reference import ReferenceRepository
from workflow.reference.customs import parse_customs_csv, store_customs
from workflow.reference.tabular import TabularError, header_key

ZH_HEADER = "报关单号,统一社会信用代码,运抵国（地区）,币制,金额,出口日期"
EN_HEADER = "declaration_number,exporter_uscc,destination_country,currency,amount,export_date"
D1, D2, D3 = "220120260000000001", "220120260000000002", "220120260000000003"


def csv_bytes(header: str, *rows: str, encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode(encoding)


GOOD = (
    f"{D1},{HAIXIN},DE,USD,100000.00,2026-11-10",
    f'{D2},{DONGFANG},gb,eur,"1,250.50",20261101',
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
@pytest.mark.parametrize("header", [ZH_HEADER, EN_HEADER])
def test_both_encodings_and_both_header_languages_read_alike(encoding, header):
    parsed = parse_customs_csv(csv_bytes(header, *GOOD, encoding=encoding))
    assert parsed.rejected == []
    assert sorted(parsed.records) == [D1, D2]
    second = parsed.records[D2]
    assert (second.exporter_uscc, second.destination_country, second.currency) == (
        DONGFANG, "GB", "EUR")
    assert second.amount == Decimal("1250.50") and second.export_date == date(2026, 11, 1)


def test_gb18030_text_outside_gbk_reads_too():
    # A column the import ignores, holding a character only GB18030 (not GBK) encodes.
    header = ZH_HEADER + ",备注"
    rows = [f"{D1},{HAIXIN},DE,USD,100.00,2026-11-10,𠀀号"]
    parsed = parse_customs_csv(csv_bytes(header, *rows, encoding="gb18030"))
    assert list(parsed.records) == [D1]


def test_columns_in_any_order_and_extra_columns_ignored():
    header = "Amount,Currency,Export Date,Destination,USCC,Declaration No,Remarks"
    parsed = parse_customs_csv(csv_bytes(header, f"5.00,USD,2026-01-02,US,{HAIXIN},{D3},x"))
    assert parsed.records[D3].amount == Decimal("5.00")


def test_bad_rows_are_reported_with_their_line_and_the_good_ones_kept():
    raw = csv_bytes(
        ZH_HEADER,
        GOOD[0],                                              # line 2
        "",                                                   # line 3: blank, skipped
        f"22012026000000001,{HAIXIN},DE,USD,1.00,2026-11-10",  # line 4: 17 digits
        f"2201202600000000099,{HAIXIN},DE,USD,1.00,2026-11-10",  # line 5: 19 digits
        f"{D2},91330200MA2AB1C2D0,DE,USD,1.00,2026-11-10",   # line 6: USCC check character
        f"{D2},{HAIXIN},XX,USD,1.00,2026-11-10",              # line 7: no such country
        f"{D2},{HAIXIN},DE,USX,1.00,2026-11-10",              # line 8: no such currency
        f"{D2},{HAIXIN},DE,USD,-1,2026-11-10",                # line 9: negative amount
        f"{D2},{HAIXIN},DE,USD,0.00,2026-11-10",              # line 10: zero
        f"{D2},{HAIXIN},DE,USD,1.00,2026-13-01",              # line 11: no such date
        f'"{D2}",{HAIXIN},DE,USD,"1.00",2026-11-10',           # line 12: good (quoted)
        f"{D2},{HAIXIN},DE,USD,2.00,2026-11-10",              # line 13: repeats line 12
        f"２２０１２０２６００００００００３,{HAIXIN},DE,USD,1.00,2026-11-10",  # 14: full-width
        f"{D3},{HAIXIN}",                                     # line 15: short row
    )
    parsed = parse_customs_csv(raw)
    assert sorted(parsed.records) == [D1, D2]
    assert parsed.records[D2].amount == Decimal("1.00")
    lines = dict(parsed.rejected)
    assert sorted(lines) == [4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
    assert "declaration_number '22012026000000001': must be exactly 18 digits" in lines[4]
    assert "must be exactly 18 digits" in lines[5] and "must be exactly 18 digits" in lines[14]
    assert lines[6].startswith("exporter_uscc '91330200MA2AB1C2D0'")
    assert lines[7].startswith("destination_country 'XX'")
    assert lines[8].startswith("currency 'USX'")
    assert lines[9].startswith("amount '-1'") and lines[10].startswith("amount '0.00'")
    assert lines[11].startswith("export_date '2026-13-01'")
    assert lines[13] == f"declaration_number {D2} repeats line 12"
    assert "destination_country ''" in lines[15] and "amount ''" in lines[15]


def test_a_quoted_value_spanning_lines_keeps_the_following_line_numbers_right():
    raw = csv_bytes(EN_HEADER + ",note", f'{D1},{HAIXIN},DE,USD,1.00,2026-11-10,"two\nlines"',
                    f"bad,{HAIXIN},DE,USD,1.00,2026-11-10,x")
    assert [line for line, _ in parse_customs_csv(raw).rejected] == [4]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("报关单号,金额\n".encode("utf-16"), "neither UTF-8 nor GB18030"),
        (b"", "no header row"),
        (csv_bytes("报关单号,统一社会信用代码,币制,金额"),
         "missing column(s): destination_country"),
        (csv_bytes(EN_HEADER + ",报关单号"), "given twice: declaration_number"),
    ],
)
def test_a_file_that_cannot_be_read_as_a_feed_imports_nothing(raw, problem):
    with pytest.raises(TabularError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_customs_csv(raw)


def test_header_names_are_compared_loosely():
    assert header_key(" Declaration_No ") == header_key("declaration no")
    assert header_key("运抵国（地区）") == header_key("运抵国(地区)") == "运抵国地区"


def test_imports_merge_by_number_and_replace_makes_the_file_the_whole_feed(any_redis):
    reference = ReferenceRepository(any_redis)
    assert not reference.customs_feed_loaded()
    first = parse_customs_csv(csv_bytes(EN_HEADER, *GOOD)).records
    done = store_customs(any_redis, first, source="file:a.csv")
    assert (done.added, done.changed, done.unchanged, done.total) == (2, 0, 0, 2)
    assert reference.customs_feed_loaded()
    assert any_redis.hget(keys.customs_feed(), "source") == "file:a.csv"
    update = parse_customs_csv(csv_bytes(
        EN_HEADER, GOOD[0], f"{D2},{DONGFANG},GB,EUR,999.00,2026-11-01",
        f"{D3},{HAIXIN},US,USD,5.00,2026-11-02")).records
    done = store_customs(any_redis, update)
    assert (done.added, done.changed, done.unchanged, done.removed, done.total) == (1, 1, 1, 0, 3)
    found = reference.customs_records([D2, "220120269999999999"])
    assert found[D2].amount == Decimal("999.00") and found["220120269999999999"] is None
    done = store_customs(any_redis, {D3: update[D3]}, replace=True)
    assert (done.added, done.unchanged, done.removed, done.total) == (0, 1, 2, 1)
    assert any_redis.hkeys(keys.customs_records()) == [D3]
