"""`xinbao whitelist import` and `xinbao whitelist list`: output, exit codes, dry run."""

from __future__ import annotations

import csv

import openpyxl
import pytest
from click.testing import CliRunner

from tests.conftest import DEMO_FILE, DONGFANG, HAIXIN, NANHAI
from web import cli, whitelist_cli
from workflow import keys

PROGRAMME = "NB-2027-IMPORT"
BAD_CHECK = HAIXIN[:-1] + "X"


def invoke(*args):
    return CliRunner().invoke(cli.main, [*args])


def import_file(path, *extra, programme=PROGRAMME):
    return invoke(
        "whitelist", "import", str(path), "--programme", programme, "--region", "Ningbo",
        "--valid-from", "2026-01-01", "--valid-to", "2027-12-31", *extra,
    )


def members(redis, programme=PROGRAMME):
    return sorted(redis.smembers(keys.whitelist_members(programme)))


@pytest.fixture
def good_and_bad(tmp_path):
    path = tmp_path / "名单.csv"
    path.write_text(
        "统一社会信用代码,企业名称\n"
        f"{HAIXIN},宁波海信\n"
        f"{BAD_CHECK},坏公司\n"
        "\n"
        f"{DONGFANG},宁波东方\n"
        f"{DONGFANG},宁波东方\n",
        encoding="gb18030",
    )
    return path


def test_import_reports_rejected_rows_and_imports_the_good_ones(
    into_fake_redis, fake_redis, good_and_bad
):
    result = import_file(good_and_bad)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{good_and_bad} (CSV, gb18030): 4 data rows after the header on line 1: 2 valid,"
        " 2 rejected",
        f"programme {PROGRAMME} (Ningbo, 2026-01-01 to 2027-12-31): version 1 imported,"
        " 2 members",
        f"  added 2: {HAIXIN}, {DONGFANG}",
        "  removed 0",
        "  unchanged 0",
    ]
    assert result.stderr.splitlines() == [
        f"  line 3: {BAD_CHECK} (坏公司): bad check character: ends in X, the first 17 call"
        " for J",
        f"  line 6: {DONGFANG} (宁波东方): duplicate of line 5",
    ]
    assert members(fake_redis) == sorted([HAIXIN, DONGFANG])


def test_second_import_prints_the_change(into_fake_redis, fake_redis, good_and_bad, tmp_path):
    assert import_file(good_and_bad).exit_code == 0
    path = tmp_path / "v2.csv"
    path.write_text(f"\ufeffUSCC,Name\n{DONGFANG},Dongfang\n{NANHAI},Nanhai\n", encoding="utf-8")
    result = import_file(path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        f"programme {PROGRAMME} (Ningbo, 2026-01-01 to 2027-12-31): version 2 imported,"
        " 2 members",
        f"  added 1: {NANHAI}",
        f"  removed 1: {HAIXIN}",
        "  unchanged 1",
    ]
    assert "(CSV, utf-8-sig)" in result.stdout
    assert members(fake_redis) == sorted([DONGFANG, NANHAI])


def test_dry_run_writes_nothing(into_fake_redis, fake_redis, good_and_bad):
    result = import_file(good_and_bad, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written" in result.stdout
    assert "  added 2: " in result.stdout
    assert fake_redis.keys("*") == []


def test_xlsx_import(into_fake_redis, fake_redis, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["企业名称", "统一社会信用代码"])
    book.active.append(["南海电子", NANHAI])
    book.active.append(["短", "91440300MA5FG6H7J"])
    path = tmp_path / "members.xlsx"
    book.save(path)
    result = import_file(path)
    assert result.exit_code == 0, result.output
    assert f"{path} (XLSX): 2 data rows after the header on line 1: 1 valid, 1 rejected" in (
        result.stdout
    )
    assert "line 3: 91440300MA5FG6H7J (短): wrong length" in result.stderr
    assert members(fake_redis) == [NANHAI]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not imported: the file is empty"),
        (f"name,code\nx,{HAIXIN}\n", "not imported: no USCC column"),
        (f"uscc\n{BAD_CHECK}\n\n", "not imported: no valid members"),
        ("uscc\n", "not imported: no valid members"),
    ],
)
def test_nothing_to_import_exits_1(into_fake_redis, fake_redis, tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    result = import_file(path)
    assert result.exit_code == 1
    assert message in result.stderr
    assert fake_redis.keys("*") == []


def test_missing_column_names_the_headers_found(into_fake_redis, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(f"企业名称,信用代码\nx,{HAIXIN}\n", encoding="utf-8")
    result = import_file(path)
    assert result.exit_code == 1
    assert "line 1 holds: 企业名称, 信用代码" in result.stderr


def test_bad_options_exit_1(into_fake_redis, fake_redis, good_and_bad):
    result = invoke(
        "whitelist", "import", str(good_and_bad), "--programme", "NB:1", "--region", "NB",
        "--valid-from", "2026-02-01", "--valid-to", "2026-01-01",
    )
    assert result.exit_code == 1
    assert "--programme: use 1-64 letters" in result.stderr
    assert "--valid-to is before --valid-from" in result.stderr
    assert import_file(good_and_bad, "--encoding", "utf-8").exit_code == 1
    assert fake_redis.keys("*") == []


def test_a_loaded_programme_is_not_taken_over(into_fake_redis, fake_redis, good_and_bad):
    assert invoke("load", str(DEMO_FILE)).exit_code == 0
    result = import_file(good_and_bad, programme="NB-2026-TONGBAO")
    assert result.exit_code == 1
    assert "was loaded from a reference file" in result.stderr
    assert members(fake_redis, "NB-2026-TONGBAO") == [HAIXIN]


def test_rejected_out_lists_every_rejected_row(into_fake_redis, tmp_path, monkeypatch):
    monkeypatch.setattr(whitelist_cli, "_SHOW_REJECTED", 1)
    path = tmp_path / "m.csv"
    path.write_text(f"uscc,name\n{HAIXIN},a\n{BAD_CHECK},b\n,c\n", encoding="utf-8")
    out = tmp_path / "rejected.csv"
    result = import_file(path, "--rejected-out", str(out))
    assert result.exit_code == 0, result.output
    assert "… 1 more rejected" in result.stderr
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "uscc", "name", "kind", "reason"]
    assert [r[:4] for r in rows[1:]] == [["3", BAD_CHECK, "b", "check"], ["4", "", "c", "empty"]]


def test_progress_bar_only_on_a_terminal(into_fake_redis, good_and_bad, monkeypatch):
    monkeypatch.setattr(whitelist_cli, "_PROGRESS_FROM_ROWS", 1)
    assert "reading rows" not in import_file(good_and_bad).stderr
    monkeypatch.setattr(whitelist_cli, "_stderr_is_tty", lambda: True)
    result = import_file(good_and_bad)
    assert result.exit_code == 0
    assert "reading rows" in result.stderr
    assert "reading rows" not in result.stdout


def test_list_shows_loaded_and_imported_programmes(into_fake_redis, good_and_bad):
    assert invoke("load", str(DEMO_FILE)).exit_code == 0
    assert import_file(good_and_bad).exit_code == 0
    # A later load of a file with a whitelists section leaves the imported programme.
    assert invoke("load", str(DEMO_FILE)).exit_code == 0
    lines = invoke("whitelist", "list").stdout.splitlines()
    assert lines[0].split()[:3] == ["PROGRAMME", "REGION", "VALID"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[PROGRAMME][1:7] == ["Ningbo", "2026-01-01", "2027-12-31", "2", "import", "1"]
    assert rows["NB-2026-TONGBAO"][5:7] == ["file", "-"]
