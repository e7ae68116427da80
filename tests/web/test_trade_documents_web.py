"""Trade documents at the edges: the API's field rules, the portal form's two optional fields
per line, the invoice table, and ``xinbao customs import``."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tests.conftest import HAIXIN
from tests.web.conftest import deal_body, dongfang_body, error_of, invoice
from tests.web.test_desk import page, users_clock  # noqa: F401  (fixture)
from tests.web.test_portal import Form, exporter_deals, field_error, haixin, value_of  # noqa: F401
from web import cli
from workflow import keys
from workflow.reference import ReferenceRepository

DECL = "220120260000012345"
FULL_WIDTH_DECL = "".join(chr(ord(c) + 0xFEE0) for c in DECL)  # "２２０１…"
LINE = ("number", "amount", "issue_date", "shipment_date", "due_date", "bill_of_lading",
        "customs_declaration")


def with_docs(number: str = "INV-HX-1001", bl: str = "MAEU-240312/01", decl: str = DECL):
    return deal_body(invoices=[invoice(number, bill_of_lading=bl, customs_declaration=decl)])


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customs_declaration", "22012026000001234"),  # 17 digits
        ("customs_declaration", "2201202600000123456"),  # 19 digits
        ("customs_declaration", "22012026000001234X"),
        ("customs_declaration", FULL_WIDTH_DECL),
        ("customs_declaration", "٢٢٠١٢٠٢٦٠٠٠٠٠١٢٣٤٥"),  # Arabic-Indic digits
        ("customs_declaration", "220120260000 12345"),
        ("customs_declaration", 220120260000012345),  # a JSON number
        ("customs_declaration", ""),
        ("bill_of_lading", "ABC"),  # 3 characters
        ("bill_of_lading", "A" * 36),
        ("bill_of_lading", "MAEU 1234"),
        ("bill_of_lading", "MAEU\x001234"),
        ("bill_of_lading", "MAEU\ud8001234"),
        ("bill_of_lading", "MAEU\u202e1234"),
        ("bill_of_lading", "ＭＡＥＵ1234"),
        ("bill_of_lading", "-MAEU1234"),
        ("bill_of_lading", "提单1234"),
    ],
)
def test_bad_document_numbers_are_refused_naming_the_field(api, field, value):
    body = deal_body(invoices=[invoice(**{field: value})])
    error = error_of(api.submit(body), 422, "VALIDATION_FAILED")
    assert list(error["fields"]) == [f"invoices[0].{field}"]


def test_document_numbers_are_trimmed_and_a_bl_upper_cased(api):
    deal = api.create(with_docs(bl="  maeu-240312/01\u3000", decl=f" {DECL}\t"))
    assert deal["invoices"][0]["bill_of_lading"] == "MAEU-240312/01"
    assert deal["invoices"][0]["customs_declaration"] == DECL


def test_documents_are_optional_and_null_is_none(api):
    deal = api.create(deal_body(invoices=[invoice(bill_of_lading=None)]))
    assert "bill_of_lading" not in deal["invoices"][0]


def test_a_document_in_another_exporters_live_deal_is_a_409_naming_it_not_the_deal(api):
    mine = api.create(with_docs())
    body = dongfang_body()
    body["invoices"][0]["customs_declaration"] = DECL
    error = error_of(api.submit(body, who="dongfang"), 409, "DUPLICATE_RECEIVABLE")
    assert f"customs declaration {DECL}" in error["message"]
    assert mine["id"] not in str(error)


# --- the portal ------------------------------------------------------------------------------


def line(number: str = "INV-HX-1001", **overrides: str) -> dict[str, str]:
    raw = {**invoice(number), "bill_of_lading": "", "customs_declaration": ""}
    return {name: overrides.get(name, raw[name]) for name in LINE}


def test_the_form_has_two_optional_document_fields_per_line(haixin):  # noqa: F811
    html = page(haixin, "/exporter/deals/new")
    assert value_of(html, "invoices-0-bill_of_lading") == ""
    assert value_of(html, "invoices-2-customs_declaration") == ""
    assert "B/L number (optional)" in html and "报关单号, optional" in html


def test_documents_typed_in_the_form_reach_the_deal_and_its_page(app, haixin):  # noqa: F811
    # A Chinese input method's full-width digits and space are folded to ASCII.
    rv = Form(haixin).post([line(bill_of_lading=" oolu-2026/77 ",
                                 customs_declaration=FULL_WIDTH_DECL + "\u3000")])
    assert rv.status_code == 302, rv.get_data(as_text=True)
    html = page(haixin, rv.headers["Location"])
    assert "OOLU-2026/77" in html and DECL in html
    assert "Bill of lading" in html
    assert app.extensions["redis"].get(keys.customs_declaration(DECL)) == exporter_deals(app)[0]


def test_a_deal_without_documents_has_no_document_columns(haixin):  # noqa: F811
    rv = Form(haixin).post([line()])
    assert "Customs declaration" not in page(haixin, rv.headers["Location"])


def test_a_bad_declaration_number_is_refused_beside_its_field(app, haixin):  # noqa: F811
    rv = Form(haixin).post([line(customs_declaration="12345678901234567")])
    html = rv.get_data(as_text=True)
    assert rv.status_code == 422
    assert "must be exactly 18 digits" in field_error(html, "invoices-0-customs_declaration")
    assert value_of(html, "invoices-0-customs_declaration") == "12345678901234567"
    assert exporter_deals(app) == []


def test_a_bill_of_lading_already_financed_is_refused_beside_its_line(app, api, haixin):  # noqa: F811
    mine = api.create(with_docs())
    rv = Form(haixin).post([line("INV-HX-1002", amount="50000.00"),
                            line("INV-HX-1003", bill_of_lading="maeu240312-01")],
                           requested_amount="50000.00")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 409
    assert f"bill of lading MAEU240312-01 is already being financed in your deal {mine['id']}" \
        in html
    assert "already in another live deal" in field_error(html, "invoices-1-bill_of_lading")
    assert field_error(html, "invoices-0-bill_of_lading") == ""
    assert exporter_deals(app) == [mine["id"]]


def test_another_exporters_declaration_is_refused_without_naming_their_deal(app, api, haixin):  # noqa: F811
    theirs = dongfang_body()
    theirs["invoices"][0]["customs_declaration"] = DECL
    theirs_id = api.create(theirs, who="dongfang")["id"]
    rv = Form(haixin).post([line(customs_declaration=DECL)])
    html = rv.get_data(as_text=True)
    assert rv.status_code == 409
    assert f"customs declaration {DECL} is already being financed in another live deal" in html
    assert theirs_id not in html


# --- xinbao customs import ------------------------------------------------------------------


def write(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "customs.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_cli_imports_good_rows_and_lists_bad_ones_by_line(into_fake_redis, fake_redis, tmp_path):
    path = write(tmp_path, "报关单号,统一社会信用代码,运抵国,币制,金额,出口日期\n"
                 f"{DECL},{HAIXIN},DE,USD,100000.00,2026-11-10\n"
                 f"1234,{HAIXIN},DE,USD,1.00,2026-11-10\n", "gb18030")
    result = CliRunner().invoke(cli.main, ["customs", "import", str(path)])
    assert result.exit_code == 1
    assert re.search(r"customs\.csv:3: declaration_number '1234': must be exactly 18",
                     result.stderr)
    assert "imported 1 records (1 new, 0 changed, 0 unchanged); the feed holds 1; 1 bad rows" \
        in result.stdout
    assert ReferenceRepository(fake_redis).customs_records([DECL])[DECL].currency == "USD"
    again = CliRunner().invoke(cli.main, ["customs", "import", str(path), "--replace"])
    assert again.exit_code == 1 and "--replace needs every row good" in again.stderr


def test_cli_refuses_an_unreadable_file_whole(into_fake_redis, fake_redis, tmp_path):
    path = write(tmp_path, "amount,currency\n1.00,USD\n")
    result = CliRunner().invoke(cli.main, ["customs", "import", str(path)])
    assert result.exit_code == 1 and "not imported, missing column(s)" in result.stderr
    assert not fake_redis.exists(keys.customs_feed())
