"""A deal end to end in a real browser against the live stack: the exporter submits it, the real
worker routes it to the bank, an officer finds it in the queue, opens it and approves it through
the form, and the exporter sees it approved.

Still through the API until their pages exist: the exporter's submission (to become the
portal's application form, two invoice lines, in Chinese and English) and the exporter seeing
the result (to become the portal's deal page). Still missing: the maker-checker step (approve
above BOC-NB's second_approval_above as boc-officer, then check it as boc-checker on a second
page, ``new_page()``). Each step is one function in tests/browser/steps.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveStack
from tests.browser.steps import (
    approve_on_desk,
    confirm_on_desk,
    haixin_application,
    login,
    screenshot,
    submit_via_api,
    wait_for_state,
)

pytestmark = pytest.mark.browser


def test_officer_approves_a_routed_deal_in_the_browser(
    live_stack: LiveStack, new_page: Any, screenshots: Path
) -> None:
    base = live_stack.base

    # The exporter: two invoice lines of USD 100,000 through the API (the portal form later).
    body = haixin_application(live_stack.fresh_invoices(2))
    deal_id = submit_via_api(base, body)["id"]
    pending = wait_for_state(base, deal_id, "pending_bank", bank="BOC-NB")
    # 200,000 invoiced x 90 % cover x BOC-NB's 90 % advance.
    assert pending["amounts"]["eligible"] == "162000.00"

    # The officer: the deal is in the queue, with its buyer and amount.
    officer = new_page()
    login(officer, base, "boc-officer")
    officer.goto(f"{base}/bank/")
    row = officer.locator("tr", has=officer.locator(f"a[href$='/bank/deals/{deal_id}']"))
    assert row.count() == 1, "the routed deal is not in BOC-NB's queue"
    assert "Müller Handels GmbH" in row.inner_text()
    assert "162,000.00" in row.inner_text()
    screenshot(officer, screenshots, "e2e-1-officer-queue")

    # ...opens it: the application, both invoices and the computed amount.
    row.locator(f"a[href$='/bank/deals/{deal_id}']").click()
    officer.wait_for_load_state()
    assert officer.url.endswith(f"/bank/deals/{deal_id}")
    page_text = officer.locator("main").inner_text()
    for number in (line["number"] for line in body["invoices"]):
        assert number in page_text
    screenshot(officer, screenshots, "e2e-2-officer-deal")

    # ...and approves it through the form: 160,000 is above BOC-NB's second-approval amount
    # (150,000), so it is only a first approval, awaiting a checker.
    approve_on_desk(officer, base, deal_id, amount="160000.00", annual_rate="0.0410")
    assert officer.url.endswith(f"/bank/deals/{deal_id}")
    assert "Awaiting a second approval" in officer.locator("main .status").inner_text()
    assert officer.locator("form:has([name=confirm])").count() == 0  # never their own check
    screenshot(officer, screenshots, "e2e-3-officer-first-approval")

    # A second officer, a checker, finds it under "awaiting my check" and confirms it.
    checker = new_page()
    login(checker, base, "boc-checker")
    checker.goto(f"{base}/bank/?show=check")
    assert checker.locator(f"a[href$='/bank/deals/{deal_id}']").count() == 1
    screenshot(checker, screenshots, "e2e-4-checker-queue")
    checker.goto(f"{base}/bank/deals/{deal_id}")
    assert "First approval by boc-officer" in checker.locator("main").inner_text()
    confirm_on_desk(checker, base, deal_id)
    assert "Approved" in checker.locator("main .status").inner_text()
    assert checker.locator("form:has([name=confirm])").count() == 0  # nothing left to decide
    screenshot(checker, screenshots, "e2e-5-checker-approved")

    # The exporter sees it approved, at the amount and rate the first officer entered.
    approved = wait_for_state(base, deal_id, "approved", timeout=10)
    assert Decimal(approved["amounts"]["approved"]) == Decimal("160000.00")
    assert approved["bank"]["bank_id"] == "BOC-NB"
    assert approved["decision"]["officer"] == "boc-officer"
    assert approved["decision"]["checker"] == "boc-checker"
