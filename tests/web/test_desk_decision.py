"""The officer's approve and decline forms on the deal page: CSRF, fresh login, the workflow's
own rules, stale forms and other banks' deals."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.web.conftest import deal_body
from tests.web.test_auth import csrf_of
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)


@pytest.fixture
def at_boc(api, clock, users_clock) -> str:  # noqa: F811
    deal = api.create(deal_body("INV-HX-1001"))
    assert api.get(deal["id"], "boc").get_json()["state"] == "pending_bank"
    return deal["id"]


def form_page(client: FlaskClient, deal_id: str) -> tuple[str, str]:
    html = page(client, f"/bank/deals/{deal_id}")
    return html, csrf_of(html)


def approve(client: FlaskClient, deal_id: str, token: str | None, **values: str):
    data = {"approve": "Approve", **values}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/decision", data=data)


def decline(client: FlaskClient, deal_id: str, token: str | None, reason: str = ""):
    data = {"decline": "Decline", "reason": reason}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/decision", data=data)


def test_deal_page_offers_the_forms_with_the_offer_as_defaults(app, at_boc, api):
    html, _ = form_page(signed_in(app, "boc-officer"), at_boc)
    deal = api.get(at_boc, "boc").get_json()
    eligible = deal["amounts"]["eligible"]
    rate = deal["bank"]["pricing"]["annual_rate"]
    assert 'name="amount"' in html and f'value="{eligible}"' in html
    assert f'value="{rate}"' in html
    assert 'name="reason"' in html and "<label" in html


def test_approve_records_the_officer(app, at_boc, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, at_boc)
    deal = api.get(at_boc, "boc").get_json()
    rv = approve(
        client, at_boc, token, amount="50000.00", annual_rate=deal["bank"]["pricing"]["annual_rate"]
    )
    assert rv.status_code == 302 and rv.headers["Location"] == f"/bank/deals/{at_boc}"
    after = api.get(at_boc, "boc").get_json()
    assert after["state"] == "approved"
    assert after["decision"]["officer"] == "boc-officer"
    assert after["amounts"]["approved"] == "50000.00"
    html = page(client, rv.headers["Location"])
    assert f"Deal {at_boc} approved." in html
    assert 'name="approve"' not in html and 'name="reason"' not in html  # decided
    assert 'name="disburse"' in html  # what comes next: the disbursement


def test_decline_needs_a_reason_and_moves_the_deal_on(app, at_boc, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, at_boc)
    rv = decline(client, at_boc, token, "   ")
    assert rv.status_code == 422
    assert "field-error" in rv.get_data(as_text=True)
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"
    rv = decline(client, at_boc, token, "Buyer concentration too high")
    assert rv.status_code == 302
    assert api.get(at_boc, "icbc").get_json()["state"] == "pending_bank"
    html = page(client, rv.headers["Location"])
    assert "declined" in html and "Buyer concentration too high" in html
    assert "Declined by your bank" in html and 'name="reason"' not in html


def test_missing_csrf_token_is_400_and_nothing_changes(app, at_boc, api):
    client = signed_in(app, "boc-officer")
    rv = approve(client, at_boc, None, amount="1000.00", annual_rate="0.05")
    assert rv.status_code == 400
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"


def test_stale_login_is_sent_to_reauthenticate_and_back(app, at_boc, api, users_clock):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, at_boc)
    users_clock.advance(seconds=app.extensions["xinbao_settings"].fresh_login_seconds + 1)
    rv = client.post(
        f"/bank/deals/{at_boc}/decision",
        data={"decline": "Decline", "reason": "no", "csrf_token": token},
        headers={"Referer": f"http://localhost/bank/deals/{at_boc}"},
    )
    assert rv.status_code == 302
    assert rv.headers["Location"] == f"/reauthenticate?next=/bank/deals/{at_boc}"
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"


def test_another_banks_officer_gets_404_and_nothing_changes(app, at_boc, api):
    client = signed_in(app, "icbc-officer")
    token = csrf_of(page(client, "/bank/"))
    assert approve(client, at_boc, token, amount="1000.00", annual_rate="0.05").status_code == 404
    assert decline(client, at_boc, token, "mine now").status_code == 404
    assert decline(client, "DL-guessed-0001", token, "guess").status_code == 404
    assert decline(client, "x" * 500, token, "guess").status_code == 404
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"


def test_stale_form_after_a_colleague_declined(app, at_boc, api):
    mine = signed_in(app, "boc-officer")
    _, token = form_page(mine, at_boc)
    colleague = signed_in(app, "boc-checker")
    _, other = form_page(colleague, at_boc)
    assert decline(colleague, at_boc, other, "Not for us").status_code == 302
    before = api.get(at_boc, "icbc").get_json()
    rv = approve(mine, at_boc, token, amount="50000.00", annual_rate="0.05")
    assert rv.status_code == 409 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert "Nothing was recorded" in html and "no longer as your page showed it" in html
    assert "50000.00" in html  # the input is kept
    assert api.get(at_boc, "icbc").get_json() == before


def test_amount_above_eligible_is_shown_beside_the_amount(app, at_boc, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, at_boc)
    rv = approve(client, at_boc, token, amount="99999999.00", annual_rate="0.05")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert 'id="amount-error"' in html and "at most the financeable" in html
    assert 'value="99999999.00"' in html
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"
    rv = approve(client, at_boc, token, amount="1e5", annual_rate="5%")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert 'id="amount-error"' in html and 'id="annual_rate-error"' in html


def test_exporter_user_is_refused_403(app, at_boc, api):
    client = signed_in(app, "haixin")
    token = csrf_of(client.get("/exporter/").get_data(as_text=True))
    assert decline(client, at_boc, token, "no").status_code == 403
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"


def test_a_form_after_the_insurer_suspended_the_limit_says_so_and_records_nothing(
        app, at_boc, api):
    """The buyer limit was suspended between page load and approval: a clear 409, never a
    500, the decline form still there (the bank should decline), nothing recorded."""
    import json
    from decimal import Decimal

    from tests.conftest import demo_text
    from workflow.reference import parse_reference, store_reference

    client = signed_in(app, "boc-officer")
    _, token = form_page(client, at_boc)
    limits = json.loads(demo_text(), parse_float=Decimal)["limits"]
    limits[0]["status"] = "suspended"
    store_reference(app.extensions["xinbao"].store.redis, parse_reference({"limits": limits}))
    rv = approve(client, at_boc, token, amount="50000.00", annual_rate="0.0420")
    assert rv.status_code == 409 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert "no longer in force" in html and "Decline the deal" in html
    assert 'name="decline"' in html
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"


def test_a_form_after_the_deadline_passed_is_stale(app, at_boc, api, clock):
    clock.advance(hours=25)  # BOC-NB decides within 24 hours; the sweep has not run yet
    client = signed_in(app, "boc-officer")  # a fresh login, as the form would ask for
    token = csrf_of(page(client, "/bank/"))
    rv = approve(client, at_boc, token, amount="50000.00", annual_rate="0.0420")
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "Nothing was recorded" in html
    assert 'name="approve"' not in html  # the page offers nothing the deal no longer allows
    assert api.get(at_boc, "boc").get_json()["state"] == "pending_bank"  # until the sweep
