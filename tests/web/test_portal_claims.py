"""The exporter's deal page after an overdue: the notice, the claim, the insurer's decision and
recoveries in the exporter's words, without the bank's officers and references."""

from __future__ import annotations

from datetime import timedelta

from tests.web import test_desk_claims as desk
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_desk_servicing import approved, form_page  # noqa: F401  (fixture)
from tests.web.test_i18n import lang_of, switch
from tests.web.test_servicing_api import post
from tests.workflow.test_servicing import DUE

# The desk's fixtures: an overdue advance, its notice sent, its claim paid.
overdue, noticed, indemnified = desk.overdue, desk.noticed, desk.indemnified
recover, claim = desk.recover, desk.claim

TODAY = DUE + timedelta(days=10)  # the day the fixtures sweep the arrears and file


def exporter_page(app, deal_id: str, lang: str = "en") -> str:
    client = signed_in(app, "haixin")
    switch(client, lang, page(client, "/exporter/"))
    return page(client, f"/exporter/deals/{deal_id}")


def test_an_overdue_deal_says_so_and_what_is_not_done_yet(app, overdue):
    html = exporter_page(app, overdue)
    assert "Your buyer has not paid" in html
    assert f"Overdue since {(DUE + timedelta(days=1)).isoformat()}: 10 days past the due date" in (
        html)
    assert "The bank has not sent the insurer a notice of possible loss yet." in html
    assert "filed a claim" not in html


def test_the_notice_and_the_claim_awaiting_the_insurer(app, noticed, monkeypatch):
    html = exporter_page(app, noticed)
    assert f"{TODAY.isoformat()}</strong> · The bank sent the insurer a notice" in html
    assert "The bank has not filed a claim yet." in html
    assert "NPL-" not in html  # the insurer's acknowledgement reference is the bank's
    from web.desk import claims

    monkeypatch.setattr(claims, "dispatch_settle_claim", lambda deal_id: None)
    officer = signed_in(app, "boc-officer")
    _, token = form_page(officer, noticed)
    assert claim(officer, noticed, token, other="Buyer's letter").status_code == 302
    html = exporter_page(app, noticed)
    assert "The bank filed a claim with the insurer for a loss of USD 80,000.00." in html
    assert "Awaiting the insurer’s decision on the claim." in html
    assert 'http-equiv="refresh"' not in html  # the insurer takes days: no reloading
    assert "boc-officer" not in html and "Buyer&#39;s letter" not in html


def test_the_claim_paid_and_recoveries_without_the_banks_internals(app, indemnified):
    officer = signed_in(app, "boc-officer")
    _, token = form_page(officer, indemnified)
    assert recover(officer, indemnified, token, amount="4000.00",
                   reference="BOC-REC-7788").status_code == 302
    html = exporter_page(app, indemnified)
    assert "The insurer paid an indemnity of USD 72,000.00 to the bank." in html
    assert "Recovered from your buyer since" in html
    assert f"<td class=\"nowrap\">{TODAY.isoformat()}</td><td class=\"num\">USD 4,000.00" in html
    assert "days past the due date" not in html  # the arrears are closed
    for internal in ("boc-officer", "BOC-REC-7788", "BOC-PAY-0001", "NPL-", "USD 3,600.00",
                     "Insurance policy", "Filed by"):
        assert internal not in html, internal


def test_a_rejected_claim_says_why(app, noticed, clock):
    clock.advance(days=111)  # past the claim deadline
    officer = signed_in(app, "boc-officer")
    _, token = form_page(officer, noticed)
    assert claim(officer, noticed, token).status_code == 302
    html = exporter_page(app, noticed)
    assert "The insurer rejected the claim." in html
    assert "The claim reached the insurer after the policy&#39;s claim deadline." in html
    assert "Recovered from your buyer" not in html


def test_another_exporter_sees_nothing(app, indemnified):
    client = signed_in(app, "dongfang")
    assert "72,000.00" not in page(client, f"/exporter/deals/{indemnified}", 404)


def test_a_deal_repaid_on_time_has_no_such_section(app, api, approved):  # noqa: F811
    assert post(api, approved, "disbursement", amount="80000.00", value_date="2026-11-24",
                reference="P-1").status_code == 200
    assert "Your buyer has not paid" not in exporter_page(app, approved)


def test_the_zh_page(app, indemnified):
    html = exporter_page(app, indemnified, "zh")
    assert lang_of(html) == "zh-CN"
    assert "买方未付款" in html and "保险人已向银行支付赔款 USD 72,000.00。" in html
