"""The officer's disbursement and repayment forms on the deal page: CSRF, fresh login, the
workflow's own rules beside the fields, stale forms, other banks' deals, the loan section."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from tests.conftest import DEMO_TODAY
from tests.web.conftest import deal_body
from tests.web.test_auth import csrf_of
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_i18n import lang_of, switch

RATE = "0.0420"
# BOC-NB deducts interest up front: 80,000 x 4.20 % x 46 days (2026-11-24 to the invoice's due
# date 2027-01-09) / 360 = 429.333... -> 429.33.
UPFRONT = "429.33"


@pytest.fixture
def approved(api, clock, users_clock) -> str:  # noqa: F811
    """Haixin's deal approved at BOC-NB for USD 80,000 at 4.20 %."""
    deal = api.create(deal_body("INV-HX-1001"))
    rv = api.decide(deal["id"], "boc", decision="approve", amount="80000.00", annual_rate=RATE)
    assert rv.status_code == 200, rv.get_json()
    assert api.get(deal["id"], "boc").get_json()["state"] == "approved"
    return deal["id"]


def form_page(client: FlaskClient, deal_id: str) -> tuple[str, str]:
    html = page(client, f"/bank/deals/{deal_id}")
    return html, csrf_of(html)


def disburse(client: FlaskClient, deal_id: str, token: str | None, **values: str):
    data = {
        "disburse": "Record the disbursement",
        "amount": "80000.00",
        "value_date": DEMO_TODAY.isoformat(),
        "reference": "BOC-PAY-0001",
        **values,
    }
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/disbursement", data=data)


def repay(client: FlaskClient, deal_id: str, token: str | None, **values: str):
    data = {"repay": "Record the repayment", "value_date": DEMO_TODAY.isoformat(), **values}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/repayments", data=data)


def state(api, deal_id: str) -> str:
    return api.get(deal_id, "boc").get_json()["state"]


def loan_of(app, deal_id: str) -> dict:
    return app.extensions["xinbao"].store.get(deal_id).get("loan")


@pytest.fixture
def disbursed(app, approved) -> str:
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    assert disburse(client, approved, token).status_code == 302
    return approved


def test_an_approved_deal_offers_the_disbursement_form_with_defaults(app, approved):
    html, _ = form_page(signed_in(app, "boc-officer"), approved)
    assert "Record the disbursement" in html
    assert f'action="/bank/deals/{approved}/disbursement"' in html
    assert 'name="amount"' in html and 'value="80000.00"' in html
    assert 'name="value_date"' in html and f'value="{DEMO_TODAY.isoformat()}"' in html
    assert 'type="date"' in html and 'name="reference"' in html
    assert "falls due on 2027-01-09" in html and "Interest at 4.20% a year: Deducted up" in html
    assert 'name="repay"' not in html and "<script" not in html


def test_disbursement_is_recorded_and_the_loan_shown(app, approved, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    rv = disburse(client, approved, token)
    assert rv.status_code == 302 and rv.headers["Location"] == f"/bank/deals/{approved}"
    assert state(api, approved) == "disbursed"
    loan = loan_of(app, approved)
    assert loan["officer"] == "boc-officer" and loan["reference"] == "BOC-PAY-0001"
    assert loan["upfront_interest"] == UPFRONT
    html = page(client, rv.headers["Location"])
    assert "Disbursement of USD 80,000.00 recorded on deal" in html
    assert "Loan" in html and "USD 80,000.00" in html
    assert "2027-01-09" in html  # the due date: the invoice's
    assert "Deducted up front" in html and "ACT/360" in html and "4.20%" in html
    assert f"USD {UPFRONT}" in html and "USD 79,570.67" in html  # net paid out
    assert "boc-officer, reference BOC-PAY-0001" in html
    assert "No repayment recorded yet." in html
    assert 'name="disburse"' not in html and 'name="repay"' in html
    assert "Record a repayment" in html


def test_missing_csrf_token_is_400_and_nothing_changes(app, approved, api):
    client = signed_in(app, "boc-officer")
    assert disburse(client, approved, None).status_code == 400
    assert state(api, approved) == "approved"


def test_another_banks_officer_gets_404_and_nothing_changes(app, approved, api):
    client = signed_in(app, "icbc-officer")
    token = csrf_of(page(client, "/bank/"))
    assert disburse(client, approved, token).status_code == 404
    assert repay(client, approved, token, amount="1.00", reference="X-1").status_code == 404
    assert disburse(client, "DL-guessed-0001", token).status_code == 404
    assert disburse(client, "x" * 500, token).status_code == 404
    assert state(api, approved) == "approved"


def test_exporter_user_is_refused_403(app, approved, api):
    client = signed_in(app, "haixin")
    token = csrf_of(client.get("/exporter/").get_data(as_text=True))
    assert disburse(client, approved, token).status_code == 403
    assert repay(client, approved, token, amount="1.00", reference="X-1").status_code == 403
    assert state(api, approved) == "approved"


def test_stale_login_is_sent_to_reauthenticate(app, approved, api, users_clock):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    users_clock.advance(seconds=app.extensions["xinbao_settings"].fresh_login_seconds + 1)
    rv = client.post(
        f"/bank/deals/{approved}/disbursement",
        data={"disburse": "x", "amount": "80000.00", "value_date": "2026-11-24",
              "reference": "R-1", "csrf_token": token},
        headers={"Referer": f"http://localhost/bank/deals/{approved}"},
    )
    assert rv.status_code == 302
    assert rv.headers["Location"] == f"/reauthenticate?next=/bank/deals/{approved}"
    assert state(api, approved) == "approved"


def test_the_forms_own_rules_are_shown_beside_the_fields(app, approved, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    rv = disburse(client, approved, token, amount="1e5", value_date="24/11/2026",
                  reference="  ")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    for name in ("amount", "value_date", "reference"):
        assert f'id="{name}-error"' in html, name
    assert 'value="1e5"' in html and 'value="24/11/2026"' in html
    assert state(api, approved) == "approved"


def test_amount_above_the_approved_amount_is_shown_beside_the_amount(app, approved, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    rv = disburse(client, approved, token, amount="80000.01")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    error = re.search(r'id="amount-error">([^<]*)<', html).group(1)
    assert "at most the approved amount, USD 80,000.00" in error
    assert 'value="80000.01"' in html and 'value="BOC-PAY-0001"' in html  # input kept
    assert state(api, approved) == "approved"


def test_value_date_in_the_future_is_shown_beside_the_date(app, approved, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    rv = disburse(client, approved, token, value_date="2026-11-25")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    error = re.search(r'id="value_date-error">([^<]*)<', html).group(1)
    assert "Must not be in the future (today is 2026-11-24)" in error
    rv = disburse(client, approved, token, value_date="2026-11-23")
    assert rv.status_code == 422
    assert "from the day of the approval (2026-11-24)" in rv.get_data(as_text=True)
    assert state(api, approved) == "approved"


def test_disbursed_twice_with_another_reference_is_stale(app, approved, api):
    mine = signed_in(app, "boc-officer")
    _, token = form_page(mine, approved)
    colleague = signed_in(app, "boc-checker")
    _, other = form_page(colleague, approved)
    assert disburse(colleague, approved, other, reference="BOC-PAY-0001").status_code == 302
    rv = disburse(mine, approved, token, reference="BOC-PAY-0002", amount="70000.00")
    assert rv.status_code == 409 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert "Nothing was recorded: this deal was already disbursed" in html
    assert "reference BOC-PAY-0001, by boc-checker" in html
    assert "“BOC-PAY-0002”" in html and "“70000.00”" in html  # what was entered
    assert 'name="disburse"' not in html and 'name="repay"' in html
    assert loan_of(app, approved)["reference"] == "BOC-PAY-0001"


def test_a_double_click_records_the_disbursement_once(app, approved, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, approved)
    assert disburse(client, approved, token).status_code == 302
    events = len(app.extensions["xinbao"].store.events(approved))
    rv = disburse(client, approved, token)
    assert rv.status_code == 302
    assert "already recorded (reference BOC-PAY-0001)" in page(client, rv.headers["Location"])
    assert len(app.extensions["xinbao"].store.events(approved)) == events


def test_repayment_above_what_is_owed_is_shown_beside_the_amount(app, disbursed, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = repay(client, disbursed, token, amount="80000.01", reference="IN-1")
    assert rv.status_code == 422
    error = re.search(r'id="amount-error">([^<]*)<', rv.get_data(as_text=True)).group(1)
    assert "at most what is owed on 2026-11-24: USD 80,000.00" in error
    rv = repay(client, disbursed, token, amount="10.00", reference="IN-1",
               value_date="2026-12-01")
    assert rv.status_code == 422
    assert "Must not be in the future" in rv.get_data(as_text=True)
    assert state(api, disbursed) == "disbursed"


def test_a_repayment_on_a_repaid_deal_is_stale(app, disbursed, api):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    assert repay(client, disbursed, token, amount="80000.00", reference="IN-1").status_code == 302
    assert state(api, disbursed) == "repaid"
    rv = repay(client, disbursed, token, amount="5.00", reference="IN-2")
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "Nothing was recorded" in html and "“IN-2”" in html
    assert 'name="repay"' not in html
    rv = repay(client, disbursed, token, amount="5.00", reference="IN-1")
    assert rv.status_code == 409
    assert "a repayment with reference IN-1 is already recorded, for USD 80,000.00" in (
        rv.get_data(as_text=True))


def test_full_path_approve_disburse_repay_in_parts(app, api, users_clock, clock):  # noqa: F811
    """On the desk: approve, disburse, a partial repayment, the rest with interest; the
    exporter's page shows the schedule and the deal repaid."""
    deal_id = api.create(deal_body("INV-HX-1001"))["id"]
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, deal_id)
    rv = client.post(f"/bank/deals/{deal_id}/decision",
                     data={"approve": "Approve", "amount": "60000.00", "annual_rate": RATE,
                           "csrf_token": token})
    assert rv.status_code == 302 and state(api, deal_id) == "approved"
    html, token = form_page(client, deal_id)
    assert 'value="60000.00"' in html  # the approved amount by default
    assert disburse(client, deal_id, token, amount="60000.00").status_code == 302
    loan = loan_of(app, deal_id)
    assert loan["upfront_interest"] == "322.00"  # 60,000 x 4.2 % x 46 / 360
    clock.advance(days=20)
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, deal_id)
    assert 'value="2026-12-14"' in html  # the value date defaults to today
    rv = repay(client, deal_id, token, amount="25000.00", reference="IN-1",
               value_date="2026-12-14")
    assert rv.status_code == 302
    html = page(client, rv.headers["Location"])
    assert "Repayment of USD 25,000.00 recorded" in html
    assert state(api, deal_id) == "disbursed"
    assert "USD 35,000.00" in html  # principal outstanding
    assert "IN-1" in html and "boc-officer" in html
    clock.advance(days=56)  # 2027-02-08: 30 days past the due date, interest accrues again
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, deal_id)
    late = 35000 * Decimal(RATE) * 30 / 360  # 122.50
    assert "USD 122.50" in html and "USD 35,122.50" in html  # to date, and owed today
    rv = repay(client, deal_id, token, amount="35122.50", reference="IN-2",
               value_date="2027-02-08")
    assert rv.status_code == 302, rv.get_data(as_text=True)
    assert f"{late:.2f}" == "122.50"
    html = page(client, rv.headers["Location"])
    assert "is repaid in full" in html and state(api, deal_id) == "repaid"
    assert "Repaid in full: principal and interest are settled." in html
    assert 'name="repay"' not in html
    exporter = signed_in(app, "haixin")
    switch(exporter, "en", page(exporter, "/exporter/"))
    html = page(exporter, f"/exporter/deals/{deal_id}")
    assert "Repaid" in html and "Repaid in full" in html
    assert "2027-01-09" in html and "USD 60,000.00" in html and "USD 59,678.00" in html
    assert "USD 25,000.00" in html and "USD 35,122.50" in html
    assert "IN-1" not in html and "boc-officer" not in html  # the bank's own references


def test_a_zh_desk_page_of_a_disbursed_deal(app, disbursed, api):
    client = signed_in(app, "boc-officer")
    switch(client, "zh", page(client, "/bank/"))
    html = page(client, f"/bank/deals/{disbursed}")
    assert lang_of(html) == "zh-CN"
    assert "放款" in html and "本金" in html and "起息日" in html and "到期日" in html
    assert "还款" in html and "计息基础" in html
    _, token = form_page(client, disbursed)
    rv = repay(client, disbursed, token, amount="90000.00", reference="IN-1")
    assert rv.status_code == 422
    assert "2026-11-24" in rv.get_data(as_text=True)


def test_the_state_filter_lists_the_servicing_states(app, disbursed):
    html = page(signed_in(app, "boc-officer"), "/bank/?show=all&state=disbursed")
    assert f"/bank/deals/{disbursed}" in html
    assert "Disbursed, awaiting repayment" in html and "Repaid in full" in html
