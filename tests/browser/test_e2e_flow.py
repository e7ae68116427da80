"""A deal end to end in a real browser against the live stack (real Redis, gunicorn, Celery
worker and beat): the exporter signs in (Chinese by default) and submits a deal with two invoice
lines through the portal's form; the real worker routes it to BOC-NB; an officer finds it in the
queue and approves it above BOC-NB's second-approval amount; a second officer, a checker,
finds it under "awaiting my check" and confirms it; the exporter's deal page shows it approved,
in Chinese and, after the language switch, in English; the officer enters the disbursement, the
checker confirms it (maker-checker on a large payout) and records a full repayment through the
desk's forms, and the exporter's page shows the deal repaid (which
frees the buyer limit it used). Screenshots of each step go to the folder the test run prints."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveStack
from tests.browser.steps import (
    approve_on_desk,
    confirm_on_desk,
    confirm_payout_on_desk,
    disburse_on_desk,
    haixin_application,
    login,
    repay_on_desk,
    screenshot,
    submit_on_portal,
    switch_language,
    wait_for_state,
)

pytestmark = pytest.mark.browser


def test_a_deal_from_the_portal_form_to_a_checked_approval(
    live_stack: LiveStack, new_page: Any, screenshots: Path
) -> None:
    base = live_stack.base

    # The exporter, in Chinese (the default for exporters): two invoice lines on the form.
    exporter = new_page(locale="zh-CN")
    login(exporter, base, "haixin")
    assert exporter.locator("html").get_attribute("lang").startswith("zh")
    lines = haixin_application(live_stack.fresh_invoices(2))["invoices"]
    exporter.goto(f"{base}/exporter/deals/new")
    screenshot(exporter, screenshots, "e2e-1-exporter-application-form-zh")
    deal_id = submit_on_portal(exporter, base, lines, requested="200000.00")
    pending = wait_for_state(base, deal_id, "pending_bank", bank="BOC-NB")
    # 200,000 invoiced x 90 % cover x BOC-NB's 90 % advance.
    assert pending["amounts"]["eligible"] == "162000.00"
    assert [line["number"] for line in pending["invoices"]] == [x["number"] for x in lines]
    exporter.reload()
    assert "Bank of China" in exporter.locator("main").inner_text()
    screenshot(exporter, screenshots, "e2e-2-exporter-deal-pending-zh")

    # The officer, in English: the deal is in the queue, with its buyer and amount.
    officer = new_page()
    login(officer, base, "boc-officer")
    officer.goto(f"{base}/bank/")
    row = officer.locator("tr", has=officer.locator(f"a[href$='/bank/deals/{deal_id}']"))
    assert row.count() == 1, "the routed deal is not in BOC-NB's queue"
    assert "Müller Handels GmbH" in row.inner_text()
    assert "162,000.00" in row.inner_text()
    screenshot(officer, screenshots, "e2e-3-officer-queue")

    # ...opens it: the application, both invoices and the computed amount.
    row.locator(f"a[href$='/bank/deals/{deal_id}']").click()
    officer.wait_for_load_state()
    assert officer.url.endswith(f"/bank/deals/{deal_id}")
    page_text = officer.locator("main").inner_text()
    for line in lines:
        assert line["number"] in page_text
    screenshot(officer, screenshots, "e2e-4-officer-deal")

    # ...and approves 160,000, above BOC-NB's second-approval amount (150,000): only a first
    # approval, awaiting a checker; never theirs to confirm.
    approve_on_desk(officer, base, deal_id, amount="160000.00", annual_rate="0.0410")
    assert officer.url.endswith(f"/bank/deals/{deal_id}")
    assert "Awaiting a second approval" in officer.locator("main .status").inner_text()
    assert officer.locator("form:has([name=confirm])").count() == 0
    screenshot(officer, screenshots, "e2e-5-officer-first-approval")

    # A second officer, a checker, finds it under "awaiting my check" and confirms it.
    checker = new_page()
    login(checker, base, "boc-checker")
    checker.goto(f"{base}/bank/?show=check")
    assert checker.locator(f"a[href$='/bank/deals/{deal_id}']").count() == 1
    screenshot(checker, screenshots, "e2e-6-checker-queue")
    checker.goto(f"{base}/bank/deals/{deal_id}")
    assert "First approval by boc-officer" in checker.locator("main").inner_text()
    screenshot(checker, screenshots, "e2e-7-checker-deal")
    confirm_on_desk(checker, base, deal_id)
    assert "Approved" in checker.locator("main .status").inner_text()
    assert checker.locator("form:has([name=confirm])").count() == 0  # nothing left to decide

    # The exporter's deal page shows it approved, in Chinese, then in English after the switch.
    approved = wait_for_state(base, deal_id, "approved", timeout=10)
    assert Decimal(approved["amounts"]["approved"]) == Decimal("160000.00")
    # The bank reads who made and who checked the approval; the exporter reads neither.
    assert not {"officer", "checker"} & approved["decision"].keys()
    at_bank = wait_for_state(base, deal_id, "approved", token="demo-bank-boc-nb-0001")
    assert (at_bank["decision"]["officer"], at_bank["decision"]["checker"]) == (
        "boc-officer", "boc-checker")
    exporter.goto(f"{base}/exporter/deals/{deal_id}")
    text = exporter.locator("main").inner_text()
    assert "已批准" in text and "160,000.00" in text
    assert "boc-checker" not in text  # the bank's internal check is not the exporter's
    screenshot(exporter, screenshots, "e2e-8-exporter-deal-approved-zh")
    switch_language(exporter, "en")
    assert exporter.url.endswith(f"/exporter/deals/{deal_id}")
    text = exporter.locator("main").inner_text()
    assert "Approved" in text and "USD 160,000.00" in text
    screenshot(exporter, screenshots, "e2e-9-exporter-deal-approved-en")
    # The choice is remembered: the deals list stays in English.
    exporter.goto(f"{base}/exporter/")
    assert exporter.locator("html").get_attribute("lang").startswith("en")

    # The officer records the advance BOC-NB paid out: the approved amount and today by
    # default. At 160,000 it is entered for a check; the checker confirms it. BOC-NB deducts
    # the interest up front, so the principal is what is owed.
    officer.goto(f"{base}/bank/deals/{deal_id}")  # the page as it is now: approved
    disburse_on_desk(officer, base, deal_id, "BOC-E2E-PAY-0001")
    text = officer.locator("main").inner_text()
    assert "Disbursement awaiting a checker" in text and "nothing is paid out yet" in text
    assert officer.locator("form:has([name=confirm_payout])").count() == 0  # not the maker's
    screenshot(officer, screenshots, "e2e-10-officer-disbursement-entered")
    checker.goto(f"{base}/bank/deals/{deal_id}")  # now showing the entry to check
    confirm_payout_on_desk(checker, base, deal_id)
    assert checker.url.endswith(f"/bank/deals/{deal_id}")
    text = checker.locator("main").inner_text()
    assert "Disbursed, awaiting repayment" in text and "BOC-E2E-PAY-0001" in text
    assert "Deducted up front" in text
    screenshot(checker, screenshots, "e2e-11-checker-disbursed")
    disbursed = wait_for_state(base, deal_id, "disbursed", timeout=10)
    assert disbursed["amounts"]["reserved_on_limit"] == "160000.00"  # the principal used
    exporter.goto(f"{base}/exporter/deals/{deal_id}")
    text = exporter.locator("main").inner_text()
    assert "Your financing" in text and "Advance paid out" in text
    screenshot(exporter, screenshots, "e2e-12-exporter-deal-disbursed")

    # ...and the buyer's payment: the whole principal, the deal repaid.
    repay_on_desk(checker, base, deal_id, "160000.00", "BOC-E2E-IN-0001")
    text = checker.locator("main").inner_text()
    assert "is repaid in full" in text and "BOC-E2E-IN-0001" in text
    assert checker.locator("form:has([name=repay])").count() == 0
    screenshot(checker, screenshots, "e2e-13-checker-repaid")
    wait_for_state(base, deal_id, "repaid", timeout=10)
    exporter.goto(f"{base}/exporter/deals/{deal_id}")
    text = exporter.locator("main").inner_text()
    assert "Repaid" in text and "Repaid in full: principal and interest are settled." in text
    assert "BOC-E2E" not in text  # the bank's own references stay the bank's
    screenshot(exporter, screenshots, "e2e-14-exporter-deal-repaid")
