"""Maker-checker on the officer desk: first approval, the checker's confirmation, send back,
the queue views "awaiting my check" and "mine, awaiting a checker", and the refusals."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.web.conftest import deal_body, invoice
from tests.web.test_auth import DEMO_PASSWORD, csrf_of
from tests.web.test_desk import deal_ids, page, signed_in, users_clock  # noqa: F401
from tests.web.test_desk_decision import approve, form_page
from workflow.users import UserSpec


@pytest.fixture
def large(api, clock, users_clock) -> str:  # noqa: F811
    """USD 320,000 financeable at BOC-NB, whose approvals from 150,000 need a checker."""
    deal = api.create(deal_body(invoices=[invoice(amount="400000.00")],
                                requested_amount="320000.00"))
    assert api.get(deal["id"], "boc").get_json()["state"] == "pending_bank"
    return deal["id"]


def first_ref(html: str) -> str:
    found = re.search(r'name="first_ref" type="hidden" value="([^"]*)"', html) or re.search(
        r'id="first_ref" name="first_ref" type="hidden" value="([^"]*)"', html)
    assert found, "no first_ref field on the page"
    return found.group(1)


def post(client: FlaskClient, deal_id: str, **data: str):
    return client.post(f"/bank/deals/{deal_id}/decision", data=data)


def first_approval(app, api, large) -> FlaskClient:
    maker = signed_in(app, "boc-officer")
    _, token = form_page(maker, large)
    rv = approve(maker, large, token, amount="310000.00", annual_rate="0.0420", first_ref="")
    assert rv.status_code == 302, rv.get_data(as_text=True)
    deal = api.get(large, "boc").get_json()
    assert deal["state"] == "pending_bank"
    assert deal["first_approval"]["officer"] == "boc-officer"
    return maker


def test_a_large_approval_waits_for_a_checker_who_confirms_it(app, api, large):
    maker = first_approval(app, api, large)
    html = page(maker, f"/bank/deals/{large}")
    assert "recorded as the first approval" in html
    assert "You approved first" in html and 'name="confirm"' not in html
    assert "Recall my approval" in html

    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{large}")
    assert "First approval by boc-officer" in html and "USD 310,000.00" in html
    assert 'name="confirm"' in html and 'name="amount"' not in html
    rv = post(checker, large, confirm="Confirm", csrf_token=csrf_of(html),
              first_ref=first_ref(html))
    assert rv.status_code == 302, rv.get_data(as_text=True)
    deal = api.get(large, "boc").get_json()
    assert deal["state"] == "approved"
    assert deal["amounts"]["approved"] == "310000.00"
    assert (deal["decision"]["officer"], deal["decision"]["checker"]) == ("boc-officer",
                                                                         "boc-checker")
    html = page(checker, f"/bank/deals/{large}")
    assert "First approval (awaiting a checker)" in html  # the timeline keeps both steps


def test_the_maker_cannot_confirm_their_own_approval(app, api, large):
    maker = first_approval(app, api, large)
    html = page(maker, f"/bank/deals/{large}")
    # No confirm button for the maker, and a forged post is refused by the server.
    rv = post(maker, large, confirm="Confirm", csrf_token=csrf_of(html), first_ref=first_ref(html))
    assert rv.status_code == 403 and rv.mimetype == "text/html"
    assert "you approved this deal first" in rv.get_data(as_text=True)
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_a_maker_who_is_also_a_checker_still_cannot_check_themselves(app, api, large):
    checker = signed_in(app, "boc-checker")
    _, token = form_page(checker, large)
    assert approve(checker, large, token, amount="310000.00", annual_rate="0.0420",
                   first_ref="").status_code == 302
    html = page(checker, f"/bank/deals/{large}")
    assert 'name="confirm"' not in html
    rv = post(checker, large, confirm="Confirm", csrf_token=csrf_of(html),
              first_ref=first_ref(html))
    assert rv.status_code == 403
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_an_officer_without_the_checker_role_cannot_confirm(app, api, large):
    first_approval(app, api, large)
    app.extensions["xinbao_users"].add(UserSpec("boc-clerk", bank_id="BOC-NB"), DEMO_PASSWORD)
    other = signed_in(app, "boc-clerk")
    html = page(other, f"/bank/deals/{large}")
    assert 'name="confirm"' not in html and "Awaiting a second approval" in html
    rv = post(other, large, confirm="Confirm", csrf_token=csrf_of(html),
              first_ref=api.get(large, "boc").get_json()["first_approval"]["ref"])
    assert rv.status_code == 403
    assert "only an officer with the checker role" in rv.get_data(as_text=True)
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_a_stale_confirm_after_a_recall_and_new_terms_is_refused(app, api, large):
    maker = first_approval(app, api, large)
    checker = signed_in(app, "boc-checker")
    old_page = page(checker, f"/bank/deals/{large}")
    # The maker recalls and approves other terms meanwhile.
    html = page(maker, f"/bank/deals/{large}")
    rv = post(maker, large, send_back="Recall", reason="wrong rate", csrf_token=csrf_of(html),
              first_ref=first_ref(html))
    assert rv.status_code == 302
    _, token = form_page(maker, large)
    assert approve(maker, large, token, amount="300000.00", annual_rate="0.0500",
                   first_ref="").status_code == 302
    rv = post(checker, large, confirm="Confirm", csrf_token=csrf_of(old_page),
              first_ref=first_ref(old_page))
    assert rv.status_code == 409
    assert "Nothing was recorded" in rv.get_data(as_text=True)
    deal = api.get(large, "boc").get_json()
    assert deal["state"] == "pending_bank" and deal["first_approval"]["amount"] == "300000.00"


def test_a_plain_approve_form_loaded_before_a_first_approval_is_stale(app, api, large):
    checker = signed_in(app, "boc-checker")
    old_page, token = form_page(checker, large)
    first_approval(app, api, large)
    rv = approve(checker, large, token, amount="310000.00", annual_rate="0.0420", first_ref="")
    assert rv.status_code == 409
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_send_back_by_the_checker_with_a_multi_line_reason(app, api, large):
    first_approval(app, api, large)
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{large}")
    rv = post(checker, large, send_back="Send back", reason="", csrf_token=csrf_of(html),
              first_ref=first_ref(html))
    assert rv.status_code == 422 and "field-error" in rv.get_data(as_text=True)
    rv = post(checker, large, send_back="Send back", reason="Rate below floor.\r\nRedo.",
              csrf_token=csrf_of(html), first_ref=first_ref(html))
    assert rv.status_code == 302
    deal = api.get(large, "boc").get_json()
    assert deal["first_approval"] is None and deal["state"] == "pending_bank"
    html = page(checker, f"/bank/deals/{large}")
    assert 'name="amount"' in html  # a fresh decision is possible again


def test_queue_views_awaiting_my_check_and_mine(app, api, large):
    maker = first_approval(app, api, large)
    html = page(maker, "/bank/?show=mine")
    assert deal_ids(html) == [large]
    assert "1 awaiting a checker" in re.sub(r"<[^>]+>", "", html)
    checker = signed_in(app, "boc-checker")
    html = page(checker, "/bank/?show=check")
    assert deal_ids(html) == [large]
    assert "1st approval: boc-officer" in html
    assert deal_ids(page(checker, "/bank/?show=mine")) == []
    # The maker (no checker role) has no "awaiting my check" tab; their own is never listed.
    assert "Awaiting my check" not in page(maker, "/bank/")
    assert deal_ids(page(maker, "/bank/?show=check")) == []
    # Another bank sees none of it.
    icbc = signed_in(app, "icbc-checker")
    assert deal_ids(page(icbc, "/bank/?show=check")) == []


def test_the_first_approval_never_reaches_the_exporter(app, api, large):
    first_approval(app, api, large)
    assert api.get(large).get_json()["first_approval"] is None


def test_the_deal_page_shows_the_buyer_limit_and_the_checker(app, api, large):
    first_approval(app, api, large)
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{large}")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    # LIM-HX-DE0001: USD 500,000; this deal reserves its invoice total, 400,000.
    assert "LIM-HX-DE0001" in text
    assert "USD 500,000.00" in text and "USD 400,000.00" in text and "USD 100,000.00" in text
    rv = post(checker, large, confirm="Confirm", csrf_token=csrf_of(html),
              first_ref=first_ref(html))
    assert rv.status_code == 302
    html = page(checker, f"/bank/deals/{large}")
    assert "Checked and confirmed by boc-checker" in html


@pytest.mark.parametrize(
    "query",
    ["page=%FF", "page=-3", "page=0", "page=2", "page=1e9", "page=" + "9" * 40,
     "page=1&page=%00", "page=%E4%B8%80"],
)
def test_awaiting_my_check_with_odd_page_numbers_is_a_page_not_an_error(app, api, large, query):
    first_approval(app, api, large)
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/?show=check&{query}")
    page_one = query not in ("page=2", "page=" + "9" * 40)  # not a number: the first page
    assert deal_ids(html) == ([large] if page_one else [])
