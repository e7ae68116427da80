"""The officer desk, read-only: the queue and the deal page, each bank seeing only its own."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Clock
from tests.web.conftest import deal_body, dongfang_body
from tests.web.test_auth import post_login
from web.formatting import money, percent, shanghai, time_left


@pytest.fixture
def users_clock(app: Flask, clock: Clock) -> Clock:
    app.extensions["xinbao_users"].clock = clock
    return clock


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    rv = post_login(client, username)
    assert rv.status_code == 302, rv.get_data(as_text=True)
    return client


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    rv = client.get(url)
    assert rv.status_code == status, rv.get_data(as_text=True)
    assert rv.mimetype == "text/html"
    return rv.get_data(as_text=True)


def deal_ids(html: str) -> list[str]:
    return re.findall(r'href="/bank/deals/([^"]+)"', html)


@pytest.fixture
def two_at_boc(api, clock, users_clock) -> list[str]:
    """Two of Haixin's deals pending at BOC, offered an hour apart."""
    first = api.create(deal_body("INV-HX-1001"))
    clock.advance(hours=1)
    second = api.create(deal_body("INV-HX-1002", requested_amount="123456.78",
                                  invoices=[{**deal_body()["invoices"][0],
                                             "number": "INV-HX-1002",
                                             "amount": "150000.00"}]))
    for deal in (first, second):
        assert api.get(deal["id"], "boc").get_json()["state"] == "pending_bank"
    return [first["id"], second["id"]]


def test_queue_lists_pending_deals_most_urgent_first(app, two_at_boc, clock):
    html = page(signed_in(app, "boc-officer"), "/bank/")
    assert deal_ids(html) == two_at_boc
    assert "Bank of China, Ningbo Branch" in html
    assert "Ningbo Haixin Trading Co., Ltd." in html  # the exporter's name, not its USCC
    assert "Müller Handels GmbH" in html and "DE-0001" in html
    assert "USD 80,000.00" in html  # thousands separators and the currency
    assert "USD 121,500.00" in html and "USD 123,456.78" in html
    assert "24 h 00 min" not in html and "23 h 00 min" in html  # time left on the first
    assert "<script" not in html


def test_queue_counters(app, two_at_boc, clock):
    client = signed_in(app, "boc-officer")
    html = page(client, "/bank/")
    assert re.search(r'class="count">2</span> pending', html)
    assert re.search(r'class="count">0</span> due within 2 hours', html)
    clock.advance(hours=21, minutes=30)  # the first is due in 1.5 h, the second in 2.5 h
    html = page(client, "/bank/")
    assert re.search(r'class="count">1</span> due within 2 hours', html)
    assert "1 h 30 min" in html


def test_queue_pages_through_the_index(app, api, clock, users_clock, monkeypatch):
    from web.desk import views

    monkeypatch.setattr(views, "PER_PAGE", 1)
    ids = []
    for n in range(3):
        ids.append(api.create(deal_body(f"INV-HX-100{n + 3}"))["id"])
        clock.advance(minutes=5)
    client = signed_in(app, "boc-officer")
    first = page(client, "/bank/")
    assert deal_ids(first) == ids[:1], first
    second = page(client, "/bank/?page=2")
    assert deal_ids(second) == ids[1:2] and "Page 2 of 3" in second
    assert deal_ids(page(client, "/bank/?page=9")) == []
    assert deal_ids(page(client, "/bank/?page=nonsense")) == ids[:1]


def test_another_bank_sees_neither_the_deal_nor_its_page(app, two_at_boc):
    client = signed_in(app, "icbc-officer")
    html = page(client, "/bank/")
    assert deal_ids(html) == []
    assert re.search(r'class="count">0</span> pending', html)
    assert deal_ids(page(client, "/bank/?show=all")) == []
    missing = page(client, f"/bank/deals/{two_at_boc[0]}", 404)
    assert "Page not found" in missing and two_at_boc[0] not in missing
    assert "Müller" not in missing
    page(client, "/bank/deals/DL-guessed-0001", 404)
    page(client, "/bank/deals/" + "x" * 500, 404)


def test_deal_page_shows_the_application_checks_amount_and_timeline(app, two_at_boc):
    html = page(signed_in(app, "boc-officer"), f"/bank/deals/{two_at_boc[0]}")
    assert "INV-HX-1001" in html and "USD 100,000.00" in html
    assert "Ningbo Haixin Trading Co., Ltd." in html and "SIN-2026-0001" in html
    # 100,000 x 90% = 90,000 insured; x 90% = 81,000; capped at the 80,000 requested.
    for text in ("90%", "USD 90,000.00", "USD 81,000.00", "USD 80,000.00"):
        assert text in html, text
    assert "Policy in force" in html and "✓ passed" in html and "✗ failed" not in html
    assert "On an active whitelist" in html
    # Times in Shanghai: the demo morning 09:00 UTC is 17:00 there.
    assert "2026-11-24 17:00" in html
    assert "Offered to bank" in html and "Xinbao (automatic)" in html


def test_after_declining_the_bank_sees_the_deal_as_it_was(app, api, two_at_boc):
    deal_id = two_at_boc[0]
    rv = api.decide(deal_id, "boc", decision="decline", officer="boc-officer",
                    reason="sector limit reached")
    assert rv.status_code == 200, rv.get_json()
    # Re-routed to the next bank.
    assert api.get(deal_id).get_json()["state"] == "pending_bank"
    client = signed_in(app, "boc-officer")
    html = page(client, f"/bank/deals/{deal_id}")
    assert "Declined by your bank" in html and "sector limit reached" in html
    assert "offer on this deal has ended" in html
    assert html.count("Offered to bank") == 1  # its own offer, not the next bank's
    assert "ICBC" not in html and "CCB" not in html and "Another bank" not in html
    assert "USD 81,000.00" not in html  # no pricing once the offer ended, as in the API
    # Out of the queue; in "all deals offered to us" with what became of it.
    assert deal_ids(page(client, "/bank/")) == two_at_boc[1:]
    everything = page(client, "/bank/?show=all")
    assert set(deal_ids(everything)) == set(two_at_boc)
    assert "Declined by your bank" in everything
    # The next bank holds it now and sees it in its queue.
    icbc = signed_in(app, "icbc-officer")
    assert deal_id in deal_ids(page(icbc, "/bank/"))
    assert "Another bank" in page(icbc, f"/bank/deals/{deal_id}")


def test_deal_page_gives_the_reason_in_words_for_a_failed_check(app, api, users_clock):
    deal = api.create(dongfang_body(), who="dongfang")
    seen = api.get(deal["id"], "dongfang").get_json()
    assert seen["state"] == "pending_bank"
    officer = {"ICBC-NB": "icbc-officer", "CCB-NB": "ccb-officer"}[seen["offered_banks"][-1]]
    html = page(signed_in(app, officer), f"/bank/deals/{deal['id']}")
    assert "The exporter is on no active unified-insurance whitelist." in html
    assert "EXPORTER_NOT_WHITELISTED" in html and "✗ failed" in html
    assert "Not whitelisted" in html


def test_an_exporter_gets_403_on_the_desk(app, two_at_boc):
    client = signed_in(app, "haixin")
    page(client, "/bank/", 403)
    page(client, f"/bank/deals/{two_at_boc[0]}", 403)


def test_anonymous_is_sent_to_sign_in(client, two_at_boc):
    for url in ("/bank/", f"/bank/deals/{two_at_boc[0]}"):
        rv = client.get(url)
        assert rv.status_code == 302 and rv.headers["Location"].startswith("/login?next=")


def test_formatting_helpers():
    from datetime import UTC, datetime

    assert money("1234567.8", "USD") == "USD 1,234,567.80"
    assert money("1500000", "JPY") == "JPY 1,500,000"
    assert money(None, "USD") == ""
    assert percent("0.90") == "90%" and percent("0.0420") == "4.20%"
    assert shanghai("2026-11-24T16:30:00.000+00:00") == "2026-11-25 00:30"
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert time_left("2026-11-25T10:00:00+00:00", now) == "1 d 1 h"
    assert time_left("2026-11-24T09:30:00+00:00", now) == "30 min"
    assert time_left("2026-11-24T08:00:00+00:00", now) == "passed"


def test_the_all_deals_tab_filters_by_state_from_the_banks_indexes(app, api, two_at_boc):
    first, second = two_at_boc
    assert api.decide(first, "boc", decision="approve").status_code == 200
    client = signed_in(app, "boc-officer")
    assert deal_ids(page(client, "/bank/?show=all&state=approved")) == [first]
    assert deal_ids(page(client, "/bank/?show=all&state=pending_bank")) == [second]
    assert set(deal_ids(page(client, "/bank/?show=all"))) == {first, second}
    # An unknown state is no filter; ICBC's approved deals are not BOC's.
    assert set(deal_ids(page(client, "/bank/?show=all&state=bogus"))) == {first, second}
    assert deal_ids(page(signed_in(app, "icbc-officer"), "/bank/?show=all&state=approved")) == []


def test_the_deadline_missed_today_counter(app, two_at_boc, clock):
    """A deadline passed counts today whether the sweep has moved the deal on yet or not, and
    no longer tomorrow (Asia/Shanghai days)."""
    missed = re.compile(r'class="count">(\d+)</span> deadline missed today')
    clock.advance(hours=23, minutes=1)  # the first deal's deadline has just passed
    assert missed.search(page(signed_in(app, "boc-officer"), "/bank/")).group(1) == "1"
    assert app.extensions["xinbao"].expire_deadlines() == [two_at_boc[0]]
    assert missed.search(page(signed_in(app, "boc-officer"), "/bank/")).group(1) == "1"
    clock.advance(days=1)
    app.extensions["xinbao"].expire_deadlines()
    assert not missed.search(page(signed_in(app, "boc-officer"), "/bank/"))
