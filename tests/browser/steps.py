"""What a person (or the exporter's system) does in the browser tests, one function a step:
sign in, submit through the API, wait for a state, approve on the desk, take a screenshot,
run axe-core on a page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from tests.support import wait_until

DEMO_PASSWORD = "demo-pass-1234"
HAIXIN = "91330200MA2AB1C2DJ"
HAIXIN_TOKEN = "demo-exporter-haixin-0001"

AXE_VERSION = "4.14.1"
AXE_FILE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA; violations of these impacts fail the tests.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")


def days_from_today(days: int) -> str:
    """The ISO date ``days`` after today (UTC): `xinbao load` counts the demo's dates from it."""
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


# --- the exporter's side, through the JSON API (until the portal's form exists) ------------------


def haixin_application(
    invoices: list[str], amount: str = "100000.00", requested: str | None = None
) -> dict[str, Any]:
    """Haixin's application to Müller (DE-0001): one USD invoice line per number, each of
    ``amount``, shipped on the day the demo declares (14 days ago)."""
    lines = [
        {
            "number": number,
            "amount": amount,
            "currency": "USD",
            "issue_date": days_from_today(-23),
            "shipment_date": days_from_today(-14),
            "due_date": days_from_today(46),
        }
        for number in invoices
    ]
    total = sum(float(amount) for _ in invoices)
    return {
        "exporter_uscc": HAIXIN,
        "policy_no": "SIN-2026-0001",
        "buyer": {"code": "DE-0001", "name": "Müller Handels GmbH", "country": "DE"},
        "invoices": lines,
        "requested_amount": requested or f"{total:.2f}",
        "currency": "USD",
    }


def submit_on_portal(
    page: Any,
    base: str,
    lines: list[dict[str, str]],
    requested: str,
    policy_no: str = "SIN-2026-0001",
    buyer: str = "DE-0001",
    currency: str = "USD",
) -> str:
    """Fill the exporter portal's application form (signed in as the exporter) with one line
    per invoice and submit it; returns the new deal's id from the page it lands on."""
    page.goto(f"{base}/exporter/deals/new")
    page.locator("select[name=policy_no]").select_option(policy_no)
    page.locator("select[name=buyer]").select_option(buyer)
    currency_field = page.locator("[name=currency]")
    if currency_field.evaluate("e => e.tagName") == "SELECT":
        currency_field.select_option(currency)
    else:
        currency_field.fill(currency)
    page.locator("input[name=requested_amount]").fill(requested)
    for index, line in enumerate(lines):
        for name in ("number", "amount", "issue_date", "shipment_date", "due_date"):
            page.locator(f"[name=invoices-{index}-{name}]").fill(line[name])
    page.locator("input[name=submit]").click()
    page.wait_for_load_state()
    assert "/exporter/deals/" in page.url and not page.url.endswith("/new"), page.url
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def switch_language(page: Any, code: str) -> None:
    """Use the language switch in the page header (a small form, no script)."""
    page.locator(f"form.lang button[name=lang][value={code}]").click()
    page.wait_for_load_state()


def submit_via_api(base: str, body: dict[str, Any], token: str = HAIXIN_TOKEN) -> dict[str, Any]:
    """POST /api/v1/deals as the exporter's system does; returns the accepted deal."""
    response = requests.post(
        f"{base}/api/v1/deals", json=body, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202, response.text
    return response.json()


def wait_for_state(
    base: str,
    deal_id: str,
    *states: str,
    token: str = HAIXIN_TOKEN,
    bank: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll the API (as ``token``) until the deal is in one of ``states`` (and, if given, at
    ``bank``); returns the deal."""

    def reached() -> dict[str, Any] | None:
        deal = requests.get(
            f"{base}/api/v1/deals/{deal_id}",
            timeout=5,
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        at = (deal.get("bank") or {}).get("bank_id")
        if deal.get("state") in states and (bank is None or at == bank):
            return deal
        return None

    return wait_until(reached, timeout, interval=0.2, what=f"{deal_id} to reach {states}")


# --- pages -------------------------------------------------------------------------------------


# Fields are found by their names, not their labels: the labels change with the language.


def login(page: Any, base: str, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login form; fails unless the user lands on a signed-in page."""
    page.goto(f"{base}/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("form:has(input[name=username]) [type=submit]").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, f"{username} was not signed in: {page.url}"


def reauthenticate_if_asked(page: Any, password: str = DEMO_PASSWORD) -> bool:
    """Re-enter the password if the fresh-login page is showing; True if it was."""
    if "/reauthenticate" not in page.url:
        return False
    page.locator("input[name=password]").fill(password)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_load_state()
    return True


def approve_on_desk(
    page: Any,
    base: str,
    deal_id: str,
    amount: str,
    annual_rate: str,
    password: str = DEMO_PASSWORD,
    *,
    retry: bool = True,
) -> None:
    """Open the deal on the signed-in officer's desk (unless it is open) and approve it
    through the form, re-entering the password once if the fresh-login page comes between."""
    if not page.url.endswith(f"/bank/deals/{deal_id}"):
        page.goto(f"{base}/bank/deals/{deal_id}")
    form = page.locator("form:has([name=approve])")
    form.locator("[name=amount]").fill(amount)
    form.locator("[name=annual_rate]").fill(annual_rate)
    form.locator("[name=approve]").click()
    page.wait_for_load_state()
    if reauthenticate_if_asked(page, password):
        assert retry, "the fresh-login page came back right after the password was entered"
        # The form is not resent after the password: approve again on the page it returns to.
        approve_on_desk(page, base, deal_id, amount, annual_rate, password, retry=False)


def confirm_on_desk(
    page: Any, base: str, deal_id: str, password: str = DEMO_PASSWORD, *, retry: bool = True
) -> None:
    """A checker confirms the first approval shown on the deal page (re-entering the password
    once if the fresh-login page comes between)."""
    if not page.url.endswith(f"/bank/deals/{deal_id}"):
        page.goto(f"{base}/bank/deals/{deal_id}")
    page.locator("form:has([name=confirm]) [name=confirm]").click()
    page.wait_for_load_state()
    if reauthenticate_if_asked(page, password):
        assert retry, "the fresh-login page came back right after the password was entered"
        confirm_on_desk(page, base, deal_id, password, retry=False)


def _submit_on_desk(
    page: Any,
    base: str,
    deal_id: str,
    button: str,
    values: dict[str, str],
    password: str = DEMO_PASSWORD,
    *,
    retry: bool = True,
) -> None:
    """Fill the deal page's form that has ``button`` with ``values`` (fields left out keep
    their defaults) and send it, re-entering the password once if the fresh-login page comes
    between (the form is then sent again from the page it returns to)."""
    if not page.url.endswith(f"/bank/deals/{deal_id}"):
        page.goto(f"{base}/bank/deals/{deal_id}")
    form = page.locator(f"form:has([name={button}])")
    for name, value in values.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator(f"[name={button}]").click()
    page.wait_for_load_state()
    if reauthenticate_if_asked(page, password):
        assert retry, "the fresh-login page came back right after the password was entered"
        _submit_on_desk(page, base, deal_id, button, values, password, retry=False)


def disburse_on_desk(page: Any, base: str, deal_id: str, reference: str, **values: str) -> None:
    """Record the disbursement through the deal page's form (amount and value date default to
    the approved amount and today unless given)."""
    _submit_on_desk(page, base, deal_id, "disburse", {**values, "reference": reference})


def confirm_payout_on_desk(page: Any, base: str, deal_id: str) -> None:
    """A checker confirms the disbursement another officer entered, through the deal page."""
    _submit_on_desk(page, base, deal_id, "confirm_payout", {})


def repay_on_desk(
    page: Any, base: str, deal_id: str, amount: str, reference: str, **values: str
) -> None:
    """Record a repayment through the deal page's form (value date today unless given)."""
    _submit_on_desk(
        page, base, deal_id, "repay", {**values, "amount": amount, "reference": reference}
    )


def screenshot(page: Any, folder: Path, name: str) -> Path:
    """Save the whole page as ``folder/name.png``."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- accessibility ---------------------------------------------------------------------------


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run the vendored axe-core on the page (WCAG 2.1 A and AA) and return the violations
    of serious or critical impact.

    The pages' CSP allows no script; Playwright's evaluate runs outside it, so axe gets in
    without loosening the policy under test.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_FILE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def describe_violations(where: str, violations: list[dict[str, Any]]) -> list[str]:
    """One line per violation and element: where, rule, impact, what to fix, which element."""
    lines = []
    for v in violations:
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(
                f"{where}: [{v['impact']}] {v['id']}: {v['help']} -> {target}"
                f" ({node.get('failureSummary', '').splitlines()[-1].strip()})"
            )
    return lines
