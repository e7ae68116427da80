"""The exporter's deal page after approval: the schedule, the repayments and the steps taken,
without the bank's own references and officers; a lapsed approval said as such."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.web.conftest import deal_body
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_i18n import lang_of, switch
from workflow.pipeline import Disbursement, Repayment

BOC = "BOC-NB"


@pytest.fixture
def wf(app):
    return app.extensions["xinbao"]


@pytest.fixture
def approved(api, users_clock) -> str:  # noqa: F811
    deal = api.create(deal_body("INV-HX-1001"))
    rv = api.decide(deal["id"], "boc", decision="approve", amount="80000.00",
                    annual_rate="0.0420")
    assert rv.status_code == 200, rv.get_json()
    return deal["id"]


@pytest.fixture
def disbursed(wf, approved, clock) -> str:
    wf.disburse(approved, BOC, Disbursement("wang", Decimal("80000.00"), clock().date(),
                                            "BOC-PAY-0001"))
    return approved


def exporter_page(app, deal_id: str, lang: str = "en") -> str:
    client = signed_in(app, "haixin")
    switch(client, lang, page(client, "/exporter/"))
    return page(client, f"/exporter/deals/{deal_id}")


def test_an_approved_deal_shows_no_schedule_yet(app, approved):
    html = exporter_page(app, approved)
    assert "Your financing" not in html and "Approved by Bank of China" in html


def test_a_disbursed_deal_shows_the_schedule_and_the_timeline(app, disbursed):
    html = exporter_page(app, disbursed)
    assert "<strong>Disbursed</strong>" in html
    assert "Your financing" in html
    assert "Due on 2027-01-09 (in 46 days): USD 80,000.00 owed today." in html
    assert "USD 80,000.00" in html and "USD 429.33" in html and "USD 79,570.67" in html
    assert "Deducted up front" in html and "ACT/360" in html
    assert "No repayment recorded yet." in html
    assert "Advance paid out" in html  # the timeline's event, by the bank named
    assert "BOC-PAY-0001" not in html and "wang" not in html
    assert "<form" not in html.split("Your financing")[1].split("</section>")[0]


def test_repayments_are_listed_with_their_split_and_the_deal_ends_repaid(
        app, wf, disbursed, clock):
    clock.advance(days=76)  # 2027-02-08: 30 days of interest after the due date
    today = clock().date()
    assert today == date(2027, 2, 8)
    wf.repay(disbursed, BOC, Repayment("wang", Decimal("20000.00"), today, "IN-1"))
    html = exporter_page(app, disbursed)
    # 80,000 x 4.2 % x 30 / 360 = 280.00 interest first, 19,720.00 to principal
    assert "USD 280.00" in html and "USD 19,720.00" in html and "USD 60,280.00" in html
    assert "Due on 2027-01-09, 30 days ago" in html
    assert "Repayment received" in html and "IN-1" not in html
    wf.repay(disbursed, BOC, Repayment("wang", Decimal("60280.00"), today, "IN-2"))
    html = exporter_page(app, disbursed)
    assert "<strong>Repaid</strong>" in html and "Repaid in full" in html
    assert "Repaid in full: principal and interest are settled." in html
    assert "Owed today" not in html


def test_a_lapsed_approval_reads_as_lapsed(app, wf, approved, clock):
    clock.advance(days=400)
    assert approved in wf.lapse_approvals()
    html = exporter_page(app, approved)
    assert "Approval lapsed: the advance was not paid out in time" in html
    assert "The approval lapsed: the bank did not pay the advance in time." in html  # why
    assert "Xinbao (automatic)" in html and "Approval cancelled by the bank" not in html
    desk = page(signed_in(app, "boc-officer"), f"/bank/deals/{approved}")
    assert "Xinbao (automatic)" in desk and "sweeper" not in desk


def test_the_schedule_in_chinese(app, wf, disbursed, clock):
    clock.advance(days=10)
    wf.repay(disbursed, BOC, Repayment("wang", Decimal("30000.00"), clock().date(), "IN-1"))
    html = exporter_page(app, disbursed, "zh")
    assert lang_of(html) == "zh-CN"
    assert "您的融资" in html and "到期日" in html and "本金" in html and "起息日" in html
    assert "前收息" in html and "还款记录" in html and "收到还款" in html
    assert "USD 30,000.00" in html
