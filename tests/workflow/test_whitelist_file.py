"""Reading a whitelist member list: CSV (UTF-8, BOM, GB18030) and XLSX, headers, bad rows."""

from __future__ import annotations

import openpyxl
import pytest

from tests.conftest import DONGFANG, HAIXIN, NANHAI
from workflow.reference.whitelist_file import MemberFile, WhitelistFileError, decode_csv

BAD_CHECK = HAIXIN[:-1] + "X"  # the first 17 call for J


def read(path, encoding=None):
    return MemberFile(path, encoding).read()


def write(tmp_path, text, encoding="utf-8", name="members.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(tmp_path, rows, name="members.xlsx"):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def rejected(members):
    return [(r.line, r.kind) for r in members.rejected]


CHINESE = f"统一社会信用代码,企业名称\n{HAIXIN},宁波海信贸易有限公司\n{DONGFANG},宁波东方纺织\n"


def test_chinese_header_utf8(tmp_path):
    members = read(write(tmp_path, CHINESE))
    assert members.members == [HAIXIN, DONGFANG]
    assert members.rejected == []
    assert (members.encoding, members.kind, members.header_line, members.rows) == (
        "utf-8", "csv", 1, 2,
    )


def test_utf8_with_bom(tmp_path):
    members = read(write(tmp_path, "\ufeff" + CHINESE))
    assert members.members == [HAIXIN, DONGFANG]
    assert members.encoding == "utf-8-sig"


def test_gb18030_is_detected(tmp_path):
    path = write(tmp_path, CHINESE, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # the file really is not UTF-8
    members = read(path)
    assert members.members == [HAIXIN, DONGFANG]
    assert members.encoding == "gb18030"


def test_explicit_encoding(tmp_path):
    path = write(tmp_path, CHINESE, encoding="gbk")
    assert read(path, "gbk").members == [HAIXIN, DONGFANG]
    with pytest.raises(WhitelistFileError, match="line 1: the file is not utf-8 text"):
        read(path, "utf-8")
    with pytest.raises(WhitelistFileError, match="unknown encoding"):
        read(path, "no-such-codec")


def test_explicit_utf8_still_drops_a_bom(tmp_path):
    assert decode_csv("\ufeffuscc\n".encode(), "UTF8") == ("utf-8-sig", "uscc\n")


def test_english_header_tolerates_spaces_and_case_and_ignores_other_columns(tmp_path):
    text = (
        f"No., Name ,  USCC  ,Region\n1,Haixin,{HAIXIN},Ningbo\n"
        f"2,Dongfang, {DONGFANG.lower()} ,NB\n"
    )
    members = read(write(tmp_path, text))
    assert members.members == [HAIXIN, DONGFANG]  # stripped and upper-cased


def test_a_title_row_before_the_header(tmp_path):
    text = (
        f"2026年宁波统保名单,,\n\n序号,统一社会信用代码,企业名称\n"
        f"1,{HAIXIN},海信\n2,{BAD_CHECK},坏\n"
    )
    members = read(write(tmp_path, text))
    assert members.header_line == 3
    assert members.members == [HAIXIN]
    assert rejected(members) == [(5, "check")]


def test_full_width_characters_are_read_as_ascii(tmp_path):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in NANHAI)
    members = read(write(tmp_path, f"uscc\n{full_width}\u200b\n"))
    assert members.members == [NANHAI]


def test_bad_rows_are_reported_with_their_line_and_reason(tmp_path):
    text = (
        "uscc,name\n"  # line 1
        f"{HAIXIN},Haixin\n"  # 2 ok
        f"{BAD_CHECK},Bad check\n"  # 3
        "91330200MA2AB1C2D,Too short\n"  # 4
        ",Nameless code\n"  # 5 empty
        "\n"  # 6 blank: skipped, not rejected
        f"{HAIXIN.lower()},Again\n"  # 7 duplicate of 2 once normalised
        "91330200MA2AB1C2DI,Bad letter\n"  # 8: I is not in the alphabet
        "9133 0200MA2AB1C2DJ,Spaces\n"  # 9: Haixin with a space
        f"{DONGFANG},Dongfang\n"  # 10 ok
    )
    members = read(write(tmp_path, text))
    assert members.members == [HAIXIN, DONGFANG]
    assert rejected(members) == [
        (3, "check"), (4, "length"), (5, "empty"), (7, "duplicate"), (8, "format"),
        (9, "separators"),
    ]
    reasons = {r.line: r.reason for r in members.rejected}
    assert reasons[3] == "bad check character: ends in X, the first 17 call for J"
    assert reasons[4] == "wrong length: 17 characters, a USCC has 18"
    assert reasons[7] == "duplicate of line 2"
    assert members.rejected[0].name == "Bad check"
    assert members.rows == 8


def test_line_numbers_count_quoted_line_breaks(tmp_path):
    text = f'uscc,name\n{BAD_CHECK},"two\nlines"\n{BAD_CHECK[:-1]}Y,x\n'
    assert rejected(read(write(tmp_path, text))) == [(2, "check"), (4, "check")]


def test_tab_separated(tmp_path):
    members = read(write(tmp_path, f"企业名称\t统一社会信用代码\n海信\t{HAIXIN}\n", "utf-16"))
    assert (members.members, members.encoding) == ([HAIXIN], "utf-16")


def test_missing_uscc_column_names_the_headers_found(tmp_path):
    path = write(tmp_path, f"企业名称,代码\n海信,{HAIXIN}\n")
    with pytest.raises(WhitelistFileError) as caught:
        read(path)
    assert "no USCC column" in str(caught.value)
    assert "line 1 holds: 企业名称, 代码" in str(caught.value)


def test_headers_compare_as_the_customs_feed_does(tmp_path):
    members = read(write(tmp_path, f"（统一社会信用代码）,Name\n{HAIXIN},x\n"))
    assert members.members == [HAIXIN]


def test_two_uscc_columns_are_an_error(tmp_path):
    with pytest.raises(WhitelistFileError, match="2 columns are headed"):
        read(write(tmp_path, "uscc,统一社会信用代码\n"))


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff", " , \n"])
def test_empty_file(tmp_path, text):
    with pytest.raises(WhitelistFileError, match="the file is empty"):
        read(write(tmp_path, text))


def test_header_only_has_no_members(tmp_path):
    members = read(write(tmp_path, "uscc,name\n"))
    assert (members.members, members.rejected, members.rows) == ([], [], 0)


def test_xlsx_with_chinese_header(tmp_path):
    path = write_xlsx(
        tmp_path,
        [
            ["序号", "统一社会信用代码", "企业名称"],
            [1, HAIXIN, "海信"],
            [],  # a blank row (line 3)
            [3, BAD_CHECK, "坏"],
            [4, 913302001234567890, "数字"],  # stored as a number
            [5, None, "无代码"],
            [6, f" {DONGFANG} ", "东方"],
        ],
    )
    members = read(path)
    assert members.kind == "xlsx"
    assert members.members == [HAIXIN, DONGFANG]
    assert rejected(members) == [(4, "check"), (5, "number"), (6, "empty")]


def test_xlsx_with_english_header_and_encoding_refused(tmp_path):
    path = write_xlsx(tmp_path, [["Name", "USCC"], ["Nanhai", NANHAI]])
    assert read(path).members == [NANHAI]
    with pytest.raises(WhitelistFileError, match="--encoding applies to CSV"):
        MemberFile(path, "gb18030")


def test_xlsx_missing_column(tmp_path):
    path = write_xlsx(tmp_path, [["name", "code"], ["x", HAIXIN]])
    with pytest.raises(WhitelistFileError, match="line 1 holds: name, code"):
        read(path)


def test_old_xls_and_broken_xlsx_are_refused(tmp_path):
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(WhitelistFileError, match="old Excel .xls"):
        MemberFile(xls)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(WhitelistFileError, match="not a readable XLSX"):
        MemberFile(broken)


def test_progress_is_reported_in_steps(tmp_path):
    text = "uscc\n" + "".join(f"{HAIXIN}\n" for _ in range(2500))
    steps = []
    members = MemberFile(write(tmp_path, text)).read(progress=steps.append)
    assert sum(steps) == 2501 and steps[:2] == [1000, 1000]
    assert len(members.members) == 1 and len(members.rejected) == 2499
