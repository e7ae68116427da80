"""Every page passes axe-core's WCAG 2.1 A/AA rules with no serious or critical violation, at
desktop and at phone width, and no page scrolls sideways on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser.conftest import DESKTOP, PHONE, LiveStack
from tests.browser.steps import (
    axe_violations,
    describe_violations,
    disburse_on_desk,
    haixin_application,
    login,
    screenshot,
    submit_via_api,
    wait_for_state,
)

pytestmark = pytest.mark.browser

BOC_TOKEN = "demo-bank-boc-nb-0001"


# The deals below reserve USD 280,000 of buyer DE-0001's USD 500,000 limit (the disbursed one
# then only its principal): the end-to-end test needs USD 200,000 of it after them.


def _pending_at_boc(live_stack: LiveStack, amount: str) -> dict[str, Any]:
    body = haixin_application(live_stack.fresh_invoices(1), amount=amount)
    deal = submit_via_api(live_stack.base, body)
    return wait_for_state(live_stack.base, deal["id"], "pending_bank", bank="BOC-NB")


def _decide(live_stack: LiveStack, deal_id: str, amount: str) -> dict[str, Any]:
    response = requests.post(
        f"{live_stack.base}/api/v1/deals/{deal_id}/decision",
        json={"decision": "approve", "amount": amount, "officer": "boc-officer"},
        headers={"Authorization": f"Bearer {BOC_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def pending_deal(live_stack: LiveStack) -> dict[str, Any]:
    """A deal the real worker has verified and offered to BOC-NB, pending its decision."""
    return _pending_at_boc(live_stack, "50000.00")


@pytest.fixture(scope="module")
def awaiting_check(live_stack: LiveStack) -> dict[str, Any]:
    """A deal pending at BOC-NB with boc-officer's first approval above the bank's
    second-approval amount (USD 150,000; given through the API), awaiting a checker."""
    deal = _pending_at_boc(live_stack, "190000.00")  # financeable: 153,900
    approved = _decide(live_stack, deal["id"], "152000.00")
    assert approved["first_approval"], approved
    return approved


@pytest.fixture(scope="module")
def approved_deal(live_stack: LiveStack) -> dict[str, Any]:
    """A deal BOC-NB approved (through the API), awaiting its disbursement."""
    deal = _pending_at_boc(live_stack, "20000.00")
    approved = _decide(live_stack, deal["id"], "16000.00")
    assert approved["state"] == "approved", approved
    return approved


@pytest.fixture(scope="module")
def disbursed_deal(live_stack: LiveStack, browser: Any) -> dict[str, Any]:
    """A deal BOC-NB approved and disbursed (through the desk's form), nothing repaid yet."""
    deal = _pending_at_boc(live_stack, "20000.00")
    _decide(live_stack, deal["id"], "16000.00")
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    try:
        page = context.new_page()
        login(page, live_stack.base, "boc-officer")
        disburse_on_desk(page, live_stack.base, deal["id"], "BOC-A11Y-PAY-1")
    finally:
        context.close()
    return wait_for_state(live_stack.base, deal["id"], "disbursed", timeout=10)


def check(page: Any, name: str, folder: Path, phone: bool, problems: list[str]) -> None:
    """Screenshot the page, run axe on it, and on a phone check it does not scroll sideways."""
    assert page.title(), f"{name}: the page has no title"
    screenshot(page, folder, name)
    problems += describe_violations(name, axe_violations(page))
    if phone:
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        shown = page.evaluate("() => document.documentElement.clientWidth")
        if wide > shown:
            problems.append(f"{name}: the page is {wide}px wide on a {shown}px screen")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pages_have_no_serious_accessibility_violations(
    live_stack: LiveStack,
    new_page: Any,
    screenshots: Path,
    pending_deal: dict[str, Any],
    awaiting_check: dict[str, Any],
    approved_deal: dict[str, Any],
    disbursed_deal: dict[str, Any],
    viewport: dict[str, int],
) -> None:
    size = "phone" if viewport is PHONE else "desktop"
    phone = viewport is PHONE
    base = live_stack.base
    problems: list[str] = []

    def visit(page: Any, path: str, name: str, status: int = 200) -> None:
        response = page.goto(base + path)
        assert response.status == status, f"{name}: {path} answered {response.status}"
        check(page, f"{size}-{name}", screenshots, phone, problems)

    anonymous = new_page(viewport=viewport)
    visit(anonymous, "/login", "login")
    # A refused sign-in (a username no one has, so no demo account gets locked).
    anonymous.locator("input[name=username]").fill("no-such-user")
    anonymous.locator("input[name=password]").fill("wrong-password")
    anonymous.locator("form:has(input[name=username]) [type=submit]").click()
    anonymous.wait_for_load_state()
    check(anonymous, f"{size}-login-refused", screenshots, phone, problems)
    visit(anonymous, "/no-such-page", "not-found", 404)

    officer = new_page(viewport=viewport)
    login(officer, base, "boc-officer")
    visit(officer, "/bank/", "desk-queue")
    visit(officer, "/bank/?show=all", "desk-queue-all")
    visit(officer, f"/bank/deals/{pending_deal['id']}", "desk-deal")
    # The approve form sent emptied: the page again, with an error beside each field.
    approve = officer.locator("form:has([name=approve])")
    approve.locator("[name=amount]").fill("")
    approve.locator("[name=annual_rate]").fill("")
    approve.locator("[name=approve]").click()
    officer.wait_for_load_state()
    check(officer, f"{size}-desk-deal-errors", screenshots, phone, problems)
    visit(officer, "/reauthenticate", "reauthenticate")
    visit(officer, "/bank/deals/D-NO-SUCH-DEAL", "desk-deal-not-found", 404)
    visit(officer, "/exporter/", "forbidden", 403)

    visit(officer, "/bank/?show=mine", "desk-queue-mine")
    visit(officer, "/bank/portfolio", "desk-portfolio")
    visit(officer, f"/bank/deals/{awaiting_check['id']}", "desk-deal-first-approval-maker")

    # After approval: the disbursement form; a disbursed deal's loan, repayments and form.
    visit(officer, f"/bank/deals/{approved_deal['id']}", "desk-deal-approved")
    disburse = officer.locator("form:has([name=disburse])")
    disburse.locator("[name=amount]").fill("16,000")
    disburse.locator("[name=reference]").fill("")
    disburse.locator("[name=disburse]").click()
    officer.wait_for_load_state()
    assert officer.locator("#amount-error").is_visible()
    assert officer.locator("#reference-error").is_visible()
    check(officer, f"{size}-desk-disbursement-errors", screenshots, phone, problems)
    visit(officer, f"/bank/deals/{disbursed_deal['id']}", "desk-deal-disbursed")
    repay = officer.locator("form:has([name=repay])")
    repay.locator("[name=amount]").fill("99999.00")
    repay.locator("[name=reference]").fill("BOC-A11Y-IN-1")
    repay.locator("[name=repay]").click()
    officer.wait_for_load_state()
    assert officer.locator("#amount-error").is_visible()
    check(officer, f"{size}-desk-repayment-errors", screenshots, phone, problems)

    checker = new_page(viewport=viewport)
    login(checker, base, "boc-checker")
    visit(checker, "/bank/?show=check", "desk-queue-awaiting-my-check")
    visit(checker, f"/bank/deals/{awaiting_check['id']}", "desk-deal-awaiting-my-check")
    # The send-back form sent without a reason: the error beside the field.
    checker.locator("form:has([name=send_back]) [name=send_back]").click()
    checker.wait_for_load_state()
    check(checker, f"{size}-desk-send-back-errors", screenshots, phone, problems)

    exporter = new_page(viewport=viewport)
    login(exporter, base, "haixin")
    visit(exporter, "/exporter/", "exporter-home")
    visit(exporter, f"/exporter/deals/{pending_deal['id']}", "exporter-deal")
    visit(exporter, f"/exporter/deals/{disbursed_deal['id']}", "exporter-deal-disbursed")
    visit(exporter, "/exporter/deals/new", "exporter-form")
    # The application sent with a bad amount: the form again, the error beside the field.
    exporter.locator("[name='invoices-0-number']").fill("INV-HX-1999")
    exporter.locator("[name='invoices-0-amount']").fill("12,000")
    exporter.locator("input[name=submit]").click()
    exporter.wait_for_load_state()
    assert exporter.locator("#invoices-0-amount-error").is_visible()
    check(exporter, f"{size}-exporter-form-errors", screenshots, phone, problems)

    assert not problems, "accessibility problems:\n" + "\n".join(problems)
