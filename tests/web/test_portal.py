"""The exporter portal: the deals list, the application form (the API's rules, idempotent,
without JavaScript), the deal page and withdrawal; each exporter sees only its own deals and
never another bank's name or decision."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import HAIXIN
from tests.web.conftest import auth, deal_body, dongfang_body, error_of, invoice
from tests.web.test_auth import CSRF_RE, csrf_of
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from workflow import keys
from workflow.pipeline import Decision

KEY_RE = re.compile(r'name="idempotency_key"[^>]*value="([^"]+)"')
LINE_FIELDS = ("number", "amount", "issue_date", "shipment_date", "due_date")
PORTAL_PAGES = ("/exporter/", "/exporter/deals/new")


def exporter(app: Flask, username: str, lang: str = "en") -> FlaskClient:
    """An exporter user signed in, reading the pages in ``lang`` (exporters default to zh)."""
    client = signed_in(app, username)
    html = page(client, "/exporter/")
    rv = client.post("/language", data={"csrf_token": csrf_of(html), "lang": lang,
                                        "next": "/exporter/"})
    assert rv.status_code == 303
    return client


@pytest.fixture
def haixin(app: Flask, users_clock) -> FlaskClient:  # noqa: F811
    return exporter(app, "haixin")


def deal_links(html: str) -> list[str]:
    return re.findall(r'href="/exporter/deals/([0-9a-f]+)"', html)


def line(number: str = "INV-HX-1001", **overrides: str) -> dict[str, str]:
    """One form line of a Haixin invoice to DE-0001, as declared in the demo data."""
    raw = invoice(number)
    return {name: overrides.get(name, raw[name]) for name in LINE_FIELDS}


def blank() -> dict[str, str]:
    return dict.fromkeys(LINE_FIELDS, "")


class Form:
    """The application form as a browser holds it: what the page gave plus what is typed."""

    def __init__(self, client: FlaskClient, html: str | None = None):
        self.client = client
        self.html = html if html is not None else page(client, "/exporter/deals/new")
        self.token = csrf_of(self.html)
        self.key = KEY_RE.search(self.html).group(1)

    def data(self, lines: list[dict[str, str]], **fields: str) -> dict[str, str]:
        data = {
            "csrf_token": self.token,
            "idempotency_key": self.key,
            "policy_no": "SIN-2026-0001",
            "buyer": "DE-0001",
            "currency": "USD",
            "requested_amount": "80000.00",
        }
        for pos, values in enumerate(lines):
            for name, value in values.items():
                data[f"invoices-{pos}-{name}"] = value
        data.update(fields)
        return data

    def post(self, lines: list[dict[str, str]], **fields: str):
        return self.client.post("/exporter/deals/new", data=self.data(lines, **fields))


def field_error(html: str, field_id: str) -> str:
    """The error text shown beside one field ('' if none)."""
    found = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>', html,
                      re.S)
    return htmllib.unescape(found.group(1)).strip() if found else ""


def value_of(html: str, field_id: str) -> str | None:
    found = re.search(rf'<input[^>]*id="{re.escape(field_id)}"[^>]*>', html)
    if not found:
        return None
    value = re.search(r'value="([^"]*)"', found.group(0))
    return htmllib.unescape(value.group(1)) if value else ""


def line_count(html: str) -> int:
    return len(re.findall(r'<fieldset class="line', html))


def exporter_deals(app: Flask, uscc: str = HAIXIN) -> list[str]:
    return app.extensions["redis"].zrange(keys.by_exporter(uscc), 0, -1)


@pytest.fixture
def at_icbc_after_boc_declined(api) -> str:
    """A Haixin deal BOC declined (with a reason of its own), now pending at ICBC."""
    deal = api.create(deal_body("INV-HX-1001"))
    assert deal["bank"]["bank_id"] == "BOC-NB"
    rv = api.decide(deal["id"], "boc", decision="decline", officer="Li Wei",
                    reason="sector limit reached")
    assert rv.status_code == 200, rv.get_json()
    after = api.get(deal["id"]).get_json()
    assert after["state"] == "pending_bank" and after["bank"]["bank_id"] == "ICBC-NB"
    return deal["id"]


# --- who may see what ---------------------------------------------------------------------------


def test_list_shows_only_the_exporters_own_deals(app, api, haixin):
    own = api.create(deal_body("INV-HX-1001"))
    other = api.create(dongfang_body(), who="dongfang")
    html = page(haixin, "/exporter/")
    assert deal_links(html) == [own["id"]]
    assert other["id"] not in html and "Thames" not in html
    assert "Ningbo Haixin Trading Co., Ltd." in html
    assert "Müller Handels GmbH" in html and "DE-0001" in html
    for text in ("USD 100,000.00", "USD 80,000.00", "With a bank, awaiting its decision",
                 "Bank of China, Ningbo Branch", "2026-11-24 17:00"):
        assert text in html, text
    assert "New application" in html and 'href="/exporter/deals/new"' in html
    assert "<script" not in html
    theirs = page(exporter(app, "dongfang"), "/exporter/")
    assert deal_links(theirs) == [other["id"]]


def test_list_is_newest_first_and_paginated(app, api, clock, haixin, monkeypatch):
    from web.portal import views

    monkeypatch.setattr(views, "PER_PAGE", 2)
    ids = []
    for n in range(3):
        ids.append(api.create(deal_body(f"INV-HX-100{n + 1}"))["id"])
        clock.advance(minutes=5)
    first = page(haixin, "/exporter/")
    assert deal_links(first) == [ids[2], ids[1]] and "Page 1 of 2 (3 deals)" in first
    assert deal_links(page(haixin, "/exporter/?page=2")) == [ids[0]]
    assert deal_links(page(haixin, "/exporter/?page=99")) == []
    assert deal_links(page(haixin, "/exporter/?page=junk")) == [ids[2], ids[1]]


def test_another_banks_name_and_decline_never_show(app, api, haixin, at_icbc_after_boc_declined):
    deal_id = at_icbc_after_boc_declined
    listing = page(haixin, "/exporter/")
    detail = page(haixin, f"/exporter/deals/{deal_id}")
    for html in (listing, detail):
        assert "ICBC, Ningbo Branch" in html
        for secret in ("Bank of China", "BOC", "sector limit", "Li Wei", "BANK_DECLINED",
                       "declined", "Declined"):
            assert secret not in html, secret
    assert "A bank passed; offered to the next bank" in detail
    assert "Offered to a bank" in detail and "Offered to ICBC, Ningbo Branch" in detail
    # The next bank lets its deadline pass: still nothing of who or why.
    flow = app.extensions["xinbao"]
    api.clock.advance(hours=25)
    assert flow.expire_deadlines() == [deal_id]
    assert flow.route(deal_id).bank_id == "CCB-NB"
    detail = page(haixin, f"/exporter/deals/{deal_id}")
    assert detail.count("A bank passed; offered to the next bank") == 2
    assert "China Construction Bank, Ningbo Branch" in detail
    for secret in ("ICBC", "Bank of China", "BANK_DEADLINE_MISSED", "Deadline missed",
                   "deadline missed"):
        assert secret not in detail, secret
    assert "ICBC" not in page(haixin, "/exporter/")


def test_unplaced_after_every_bank_passed_names_none(app, api, haixin):
    deal = api.create(deal_body("INV-HX-1001"))
    flow = app.extensions["xinbao"]
    for bank in ("BOC-NB", "ICBC-NB", "CCB-NB"):
        flow.decide(deal["id"], bank, Decision(approve=False, officer="x", reason=f"no {bank}"))
        flow.route(deal["id"])
    assert api.get(deal["id"]).get_json()["state"] == "unplaced"
    for html in (page(haixin, "/exporter/"), page(haixin, f"/exporter/deals/{deal['id']}")):
        assert "No bank took it" in html
        for secret in ("Bank of China", "ICBC", "China Construction", "BOC", "CCB"):
            assert secret not in html, secret
    detail = page(haixin, f"/exporter/deals/{deal['id']}")
    assert "No bank is left that can finance this deal." in detail
    assert "Withdraw this application" not in detail


def test_another_exporters_deal_and_guessed_ids_are_404_pages(app, api, users_clock):  # noqa: F811
    theirs = api.create(dongfang_body(), who="dongfang")
    client = exporter(app, "haixin")
    missing = page(client, f"/exporter/deals/{theirs['id']}", 404)
    assert "Page not found" in missing and "Thames" not in missing
    page(client, "/exporter/deals/0123456789abcdef0123", 404)
    page(client, "/exporter/deals/" + "x" * 500, 404)
    token = csrf_of(page(client, "/exporter/"))
    rv = client.post(f"/exporter/deals/{theirs['id']}/withdraw", data={"csrf_token": token})
    assert rv.status_code == 404 and rv.mimetype == "text/html"
    assert api.get(theirs["id"], "dongfang").get_json()["state"] == "pending_bank"


def test_officers_are_refused_and_anonymous_users_sent_to_sign_in(app, api, users_clock):  # noqa: F811
    deal = api.create(deal_body())
    urls = (*PORTAL_PAGES, f"/exporter/deals/{deal['id']}")
    officer = signed_in(app, "boc-officer")
    for url in urls:
        rv = officer.get(url)
        assert rv.status_code == 403 and rv.mimetype == "text/html", url
    token = csrf_of(page(officer, "/bank/"))
    rv = officer.post(f"/exporter/deals/{deal['id']}/withdraw", data={"csrf_token": token})
    assert rv.status_code == 403
    anonymous = app.test_client()
    for url in urls:
        rv = anonymous.get(url)
        assert rv.status_code == 302 and rv.headers["Location"].startswith("/login?next="), url
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


# --- the application form ---------------------------------------------------------------------


def test_form_offers_only_the_exporters_policies_and_buyers(haixin):
    html = page(haixin, "/exporter/deals/new")
    assert line_count(html) == 3
    assert all(value_of(html, f"invoices-{p}-number") == "" for p in range(3))
    assert 'value="SIN-2026-0001"' in html and "SIN-2026-0002" not in html
    assert "Müller Handels GmbH (DE, USD)" in html and "Acme Imports Inc. (US, USD)" in html
    assert "Thames" not in html and "GB-0007" not in html
    assert KEY_RE.search(html) and CSRF_RE.search(html)
    for field in ("policy_no", "buyer", "currency", "requested_amount", "invoices-0-number",
                  "invoices-2-due_date"):
        assert f'for="{field}"' in html, field  # every input has its label
    assert "<script" not in html


def test_an_exporter_without_a_limit_in_force_is_told_so(app, users_clock):  # noqa: F811
    html = page(exporter(app, "nanhai"), "/exporter/deals/new")
    assert "has a buyer credit limit in force" in html and 'name="buyer"' not in html


def test_add_more_lines_keeps_everything_typed(haixin):
    form = Form(haixin)
    typed = [line("INV-HX-1001"), blank(), line("INV-HX-1002", amount="2500.50")]
    rv = form.post(typed, add_lines="Add more lines", requested_amount="1234.00")
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    assert line_count(html) == 6
    assert value_of(html, "invoices-0-number") == "INV-HX-1001"
    assert value_of(html, "invoices-2-amount") == "2500.50"
    assert value_of(html, "invoices-2-due_date") == "2027-01-09"
    assert value_of(html, "invoices-1-number") == "" and value_of(html, "invoices-5-number") == ""
    assert value_of(html, "requested_amount") == "1234.00"
    assert KEY_RE.search(html).group(1) == form.key  # the same application, still
    assert "field-error" not in html and 'role="alert"' not in html
    assert exporter_deals(haixin.application) == []


def test_remove_drops_only_that_line(haixin):
    form = Form(haixin)
    typed = [line("INV-HX-1001"), line("INV-HX-1002"), line("INV-HX-1003")]
    rv = form.post(typed, remove="1")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 200 and line_count(html) == 2
    assert value_of(html, "invoices-0-number") == "INV-HX-1001"
    assert value_of(html, "invoices-1-number") == "INV-HX-1003"
    assert "INV-HX-1002" not in html
    assert KEY_RE.search(html).group(1) == form.key
    # Removing the last line leaves one blank line to type into.
    rv = Form(haixin).post([line("INV-HX-1001")], remove="0")
    assert line_count(rv.get_data(as_text=True)) == 1
    assert exporter_deals(haixin.application) == []


def test_errors_are_shown_beside_their_fields_and_input_kept(haixin):
    form = Form(haixin)
    typed = [line("INV-HX-1001", amount="12,000"), blank(), line("INV-HX-1002",
                                                                  due_date="2027-02-30")]
    rv = form.post(typed)
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert "Nothing was submitted" in html
    assert "decimal string" in field_error(html, "invoices-0-amount")
    assert field_error(html, "invoices-2-due_date") == "Not a valid date."
    assert field_error(html, "invoices-0-number") == ""
    assert field_error(html, "invoices-1-amount") == ""  # the blank line is ignored
    assert 'aria-invalid="true"' in html
    assert value_of(html, "invoices-0-amount") == "12,000"
    assert value_of(html, "invoices-2-due_date") == "2027-02-30"
    assert value_of(html, "invoices-2-number") == "INV-HX-1002"
    assert exporter_deals(haixin.application) == []


def test_a_buyer_not_on_the_chosen_policy_is_refused(haixin):
    rv = Form(haixin).post([line()], buyer="GB-0007")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 422
    assert "no credit limit in force under policy SIN-2026-0001" in field_error(html, "buyer")
    rv = Form(haixin).post([line()], policy_no="SIN-2026-0002", buyer="GB-0007")
    assert "Choose one of your policies." in field_error(rv.get_data(as_text=True), "policy_no")
    assert exporter_deals(haixin.application) == []


def test_an_application_needs_an_invoice_and_a_sensible_amount(haixin):
    rv = Form(haixin).post([blank(), blank(), blank()], requested_amount="")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 422
    assert "give between 1 and 50 invoices" in html and 'id="invoices-error"' in html
    assert field_error(html, "requested_amount") == "Missing data for required field."
    rv = Form(haixin).post([line()], requested_amount="150000.00")
    assert "must not exceed the invoices' total 100000.00" in field_error(
        rv.get_data(as_text=True), "requested_amount")
    assert exporter_deals(haixin.application) == []


def test_a_valid_application_makes_one_deal_however_often_it_is_sent(app, api, haixin):
    form = Form(haixin)
    typed = [line("INV-HX-1001"), blank(), line("INV-HX-1002", amount="50000.00")]
    rv = form.post(typed, requested_amount="120000.00")
    assert rv.status_code == 302, rv.get_data(as_text=True)
    (deal_id,) = exporter_deals(app)
    assert rv.headers["Location"] == f"/exporter/deals/{deal_id}"
    deal = api.get(deal_id).get_json()
    assert [i["number"] for i in deal["invoices"]] == ["INV-HX-1001", "INV-HX-1002"]
    assert deal["amounts"]["requested"] == "120000.00" and deal["currency"] == "USD"
    assert deal["buyer"] == {"code": "DE-0001", "name": "Müller Handels GmbH", "country": "DE"}
    assert deal["state"] == "pending_bank"  # the workers (eager here) took it on
    html = page(haixin, rv.headers["Location"])
    assert f"Application submitted as deal {deal_id}." in html
    # A double click, or the page sent again: the same deal, no second one.
    again = form.post(typed, requested_amount="120000.00")
    assert again.status_code == 302 and again.headers["Location"] == f"/exporter/deals/{deal_id}"
    assert exporter_deals(app) == [deal_id]
    assert "had already been submitted" in page(haixin, again.headers["Location"])


def test_a_changed_resubmission_of_a_sent_form_is_not_a_silent_new_deal(app, haixin):
    form = Form(haixin)
    assert form.post([line("INV-HX-1001")]).status_code == 302
    (first,) = exporter_deals(app)
    rv = form.post([line("INV-HX-1003")])
    html = rv.get_data(as_text=True)
    assert rv.status_code == 409 and f"already submitted as deal {first}" in html
    assert f'href="/exporter/deals/{first}"' in html
    new_key = KEY_RE.search(html).group(1)
    assert new_key != form.key and value_of(html, "invoices-0-number") == "INV-HX-1003"
    form.key = new_key
    assert form.post([line("INV-HX-1003")]).status_code == 302  # now deliberately a new one
    assert len(exporter_deals(app)) == 2


def test_an_invoice_already_financed_is_refused_beside_its_line(app, api, haixin):
    existing = api.create(deal_body("INV-HX-1001"))
    form = Form(haixin)
    rv = form.post([line("INV-HX-1002"), line("INV-HX-1001")], requested_amount="150000.00")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 409
    assert f"invoice INV-HX-1001 is already being financed in deal {existing['id']}" in html
    assert "already in another live deal" in field_error(html, "invoices-1-number")
    assert field_error(html, "invoices-0-number") == ""
    assert exporter_deals(app) == [existing["id"]]
    # Nothing was held for the refused one: without the duplicate, the same form goes through.
    assert form.post([line("INV-HX-1002")]).status_code == 302
    assert len(exporter_deals(app)) == 2


def test_a_form_without_its_csrf_token_is_refused(app, haixin):
    form = Form(haixin)
    data = form.data([line()])
    del data["csrf_token"]
    rv = haixin.post("/exporter/deals/new", data=data)
    assert rv.status_code == 400 and rv.mimetype == "text/html"
    assert exporter_deals(app) == []
    rv = haixin.post("/exporter/deals/new", data={**data, "csrf_token": "forged"})
    assert rv.status_code == 400


@pytest.mark.parametrize(
    ("form_lines", "fields", "api_invoices", "api_fields"),
    [
        (
            [line("INV-HX-1001", amount="-5"), blank(), line("INV-HX-1002",
                                                             issue_date="2026-13-01")],
            {},
            [invoice("INV-HX-1001", amount="-5"), invoice("INV-HX-1002", issue_date="2026-13-01")],
            {},
        ),
        (
            [line("INV-HX-1001", due_date="2026-11-05"), line("INV-HX-1001")],
            {"requested_amount": "0"},
            [invoice("INV-HX-1001", due_date="2026-11-05"), invoice("INV-HX-1001")],
            {"requested_amount": "0"},
        ),
        (
            [line("BAD NUMBER!", amount="1.234")],
            {"currency": "usd"},
            [invoice("BAD NUMBER!", amount="1.234", currency="usd")],
            {"currency": "usd"},
        ),
    ],
)
def test_the_form_and_the_api_refuse_the_same_input_with_the_same_words(
    client, haixin, form_lines, fields, api_invoices, api_fields
):
    """One set of rules: the API's field errors, each shown beside the matching form field."""
    api_rv = client.post("/api/v1/deals", json=deal_body(invoices=api_invoices, **api_fields),
                         headers=auth("haixin"))
    expected = error_of(api_rv, 422, "VALIDATION_FAILED")["fields"]
    assert expected
    rv = Form(haixin).post(form_lines, **fields)
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    filled = [pos for pos, values in enumerate(form_lines) if any(values.values())]
    for path, messages in expected.items():
        found = re.fullmatch(r"invoices\[(\d+)\]\.(\w+)", path)
        if found and found.group(2) == "currency":
            field_id = "currency"  # every line takes the deal's currency
        elif found:
            field_id = f"invoices-{filled[int(found.group(1))]}-{found.group(2)}"
        else:
            field_id = path
        shown = field_error(html, field_id)
        for message in messages:
            assert message in shown, (path, message, shown)
    assert exporter_deals(haixin.application) == []


# --- the deal page and withdrawal ---------------------------------------------------------------


def test_deal_page_shows_the_application_checks_offer_and_timeline(app, api, haixin):
    deal = api.create(deal_body("INV-HX-1001"))
    html = page(haixin, f"/exporter/deals/{deal['id']}")
    assert "With a bank, awaiting its decision" in html
    assert "with Bank of China, Ningbo Branch" in html
    assert "INV-HX-1001" in html and "USD 100,000.00" in html and "SIN-2026-0001" in html
    assert "✓ All 17 checks passed." in html and "✗ failed" not in html
    assert "Policy in force" in html and "✓ passed" in html  # in the table, folded away
    assert deal["amounts"]["eligible"] == "80000.00"
    assert "USD 80,000.00" in html and "4.20%" in html  # financeable amount and the rate
    assert "2026-11-24 17:00" in html  # Shanghai time
    assert "Offered to Bank of China, Ningbo Branch" in html and "You" in html
    assert 'http-equiv="refresh"' not in html  # nothing moving: the bank decides
    assert "Withdraw this application" in html


def test_a_deal_being_worked_on_refreshes_itself(app, haixin):
    from web.schemas import DealRequestSchema

    flow = app.extensions["xinbao"]
    submitted = flow.submit(DealRequestSchema().load(deal_body())).deal  # no worker yet
    html = page(haixin, f"/exporter/deals/{submitted.id}")
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "refreshes itself every 5 seconds" in html
    assert "Not checked yet." in html
    flow.verify(submitted.id)
    assert 'http-equiv="refresh"' not in page(haixin, f"/exporter/deals/{submitted.id}")


def test_a_rejected_deal_says_why_in_words(app, api, haixin):
    late = api.create(deal_body("INV-HX-1001", invoices=[invoice(shipment_date="2026-11-11")]))
    assert late["state"] == "rejected"
    html = page(haixin, f"/exporter/deals/{late['id']}")
    assert "Rejected" in html and "✗ failed" in html
    assert "The invoice&#39;s shipment date differs from the declaration&#39;s." in html
    assert "Withdraw this application" not in html


def test_withdraw_before_approval(app, api, haixin):
    deal = api.create(deal_body())
    client = haixin
    token = csrf_of(page(client, f"/exporter/deals/{deal['id']}"))
    rv = client.post(f"/exporter/deals/{deal['id']}/withdraw",
                     data={"csrf_token": token, "reason": "Buyer paid early"})
    assert rv.status_code == 302 and rv.headers["Location"] == f"/exporter/deals/{deal['id']}"
    assert api.get(deal["id"]).get_json()["state"] == "withdrawn"
    html = page(client, rv.headers["Location"])
    assert f"Application {deal['id']} withdrawn." in html and "Withdrawn by you" in html
    assert "Buyer paid early" in html and "Withdraw this application" not in html
    assert deal["id"] not in page(signed_in(app, "boc-officer"), "/bank/")


def test_withdraw_without_csrf_is_refused(api, haixin):
    deal = api.create(deal_body())
    rv = haixin.post(f"/exporter/deals/{deal['id']}/withdraw", data={"reason": "x"})
    assert rv.status_code == 400
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


def test_withdraw_reason_follows_the_apis_rules(api, haixin):
    deal = api.create(deal_body())
    token = csrf_of(page(haixin, f"/exporter/deals/{deal['id']}"))
    rv = haixin.post(f"/exporter/deals/{deal['id']}/withdraw",
                     data={"csrf_token": token, "reason": "x" * 501})
    assert rv.status_code == 422
    assert field_error(rv.get_data(as_text=True), "reason")
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"


def test_a_stale_withdraw_after_approval_is_refused_with_words(app, api, haixin):
    deal = api.create(deal_body())
    token = csrf_of(page(haixin, f"/exporter/deals/{deal['id']}"))  # the form, as shown
    flow = app.extensions["xinbao"]
    flow.decide(deal["id"], "BOC-NB", Decision(approve=True, officer="Li Wei"))
    rv = haixin.post(f"/exporter/deals/{deal['id']}/withdraw", data={"csrf_token": token})
    html = rv.get_data(as_text=True)
    assert rv.status_code == 409 and rv.mimetype == "text/html"
    assert "a bank approved this application meanwhile" in html
    assert api.get(deal["id"]).get_json()["state"] == "approved"
    assert "Approved by Bank of China, Ningbo Branch: USD 80,000.00 at 4.20% a year." in html
    assert "Withdraw this application" not in html
    assert "Li Wei" not in html  # the bank is named, its officers are not


def test_a_withdraw_after_the_deal_ended_is_refused_with_words(app, api, haixin):
    deal = api.create(deal_body())
    token = csrf_of(page(haixin, f"/exporter/deals/{deal['id']}"))
    assert api.withdraw(deal["id"]).status_code == 200  # elsewhere (the API), meanwhile
    rv = haixin.post(f"/exporter/deals/{deal['id']}/withdraw", data={"csrf_token": token})
    assert rv.status_code == 302  # withdrawing twice is what was asked: done
    rejected = api.create(deal_body("INV-HX-1002", invoices=[invoice(
        "INV-HX-1002", shipment_date="2026-11-11")]))
    rv = haixin.post(f"/exporter/deals/{rejected['id']}/withdraw", data={"csrf_token": token})
    assert rv.status_code == 409
    assert "has ended meanwhile (Rejected)" in rv.get_data(as_text=True)



def test_a_banks_maker_checker_steps_stay_with_the_bank(app, api, haixin):
    """A first approval (awaiting the bank's checker) is the bank's business: the exporter
    sees the deal pending, and after that bank passes on it, nothing of it at all."""
    numbers = [f"INV-HX-100{n}" for n in range(1, 5)]  # 4 x 100,000: 324,000 financeable
    deal = api.create(deal_body(*numbers, requested_amount="330000.00"))
    flow = app.extensions["xinbao"]
    first = flow.decide(deal["id"], "BOC-NB", Decision(approve=True, officer="Li Wei"))
    assert first.state == "pending_bank" and first.get("first_approval")
    html = page(haixin, f"/exporter/deals/{deal['id']}")
    assert "With a bank, awaiting its decision" in html and "with Bank of China" in html
    for secret in ("Li Wei", "First approval", "first approval", "checker"):
        assert secret not in html, secret
    flow.return_approval(deal["id"], "BOC-NB", "boc-checker", True, "internal: looks shaky")
    html = page(haixin, f"/exporter/deals/{deal['id']}")
    for secret in ("looks shaky", "sent back", "boc-checker", "Li Wei"):
        assert secret not in html, secret
    flow.decide(deal["id"], "BOC-NB",
                Decision(approve=False, officer="Wang Fang", reason="over our sector cap"))
    assert flow.route(deal["id"]).bank_id == "ICBC-NB"
    html = page(haixin, f"/exporter/deals/{deal['id']}")
    for secret in ("Li Wei", "Wang Fang", "Bank of China", "BOC", "sector cap", "approval"):
        assert secret not in html, secret
    assert "A bank passed; offered to the next bank" in html


def test_exporters_read_the_portal_in_chinese_by_default(app, api, users_clock):  # noqa: F811
    from flask_babel import force_locale

    from web.words import state_words

    deal = api.create(deal_body())
    app.extensions["xinbao"].decide(deal["id"], "BOC-NB", Decision(approve=True, officer="x"))
    client = signed_in(app, "haixin")
    with app.test_request_context("/"), force_locale("zh"):
        approved = state_words("approved")
    assert re.search(r"[\u4e00-\u9fff]", approved)
    for url in ("/exporter/", f"/exporter/deals/{deal['id']}"):
        html = page(client, url)
        assert '<html lang="zh-CN">' in html and approved in html, url
    assert '<html lang="zh-CN">' in page(client, "/exporter/deals/new")
