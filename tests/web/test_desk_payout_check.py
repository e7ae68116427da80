"""Maker-checker on large disbursements on the officer desk: the maker's entry, the card the
checker confirms or sends back, the queue rows, the refusals, stale and repeated posts."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.web.test_auth import DEMO_PASSWORD, csrf_of
from tests.web.test_desk import deal_ids, page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_desk_servicing import approved, disburse, form_page  # noqa: F401  (fixture)
from tests.web.test_i18n import lang_of, switch
from tests.workflow.test_servicing import bank_terms
from workflow.users import UserSpec

BOC = "BOC-NB"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def payout_ref(html: str) -> str:
    found = re.search(r'name="payout_ref" type="hidden" value="([0-9a-f]*)"', html)
    assert found, "no payout_ref field on the page"
    return found.group(1)


def check(client: FlaskClient, deal_id: str, html: str, action: str = "confirm_payout",
          **values: str):
    data = {action: "x", "csrf_token": csrf_of(html), "payout_ref": payout_ref(html), **values}
    return client.post(f"/bank/deals/{deal_id}/disbursement/check", data=data)


def stored(app, deal_id: str):
    return app.extensions["xinbao"].store.get(deal_id)


@pytest.fixture
def threshold(app) -> None:
    """BOC-NB's disbursements from USD 50,000 need a checker (the demo deal pays 80,000)."""
    bank_terms(app.extensions["xinbao"], BOC, second_approval_above="50000.00")


@pytest.fixture
def entered(app, approved, threshold) -> str:  # noqa: F811
    """The maker boc-officer entered the USD 80,000 disbursement; it awaits a checker."""
    maker = signed_in(app, "boc-officer")
    _, token = form_page(maker, approved)
    rv = disburse(maker, approved, token)
    assert rv.status_code == 302, rv.get_data(as_text=True)
    assert stored(app, approved).get("pending_disbursement")["officer"] == "boc-officer"
    return approved


def test_the_form_says_large_amounts_need_a_checker(app, approved, threshold):  # noqa: F811
    html, _ = form_page(signed_in(app, "boc-officer"), approved)
    assert "Disbursements of USD 50,000.00 or more are paid out only once a second officer" in (
        text(html))


def test_the_maker_is_told_it_awaits_a_checker_and_sees_the_card(app, approved, threshold):  # noqa: F811
    maker = signed_in(app, "boc-officer")
    _, token = form_page(maker, approved)
    rv = disburse(maker, approved, token)
    assert rv.status_code == 302
    html = page(maker, rv.headers["Location"])
    words = text(html)
    assert "Disbursement of USD 80,000.00 entered on deal" in words
    assert "nothing is paid out yet" in words and "recorded on deal" not in words
    deal = stored(app, approved)
    assert deal.state == "approved" and not deal.get("loan")
    assert "Disbursement awaiting a checker" in words
    assert "USD 80,000.00" in words and "BOC-PAY-0001" in words and "boc-officer" in words
    assert "You entered this disbursement" in words
    # No payout form meanwhile; the maker may recall, never confirm.
    assert 'name="disburse"' not in html and 'name="confirm_payout"' not in html
    assert 'name="send_back_payout"' in html and "Recall my disbursement" in html
    assert "Approved; a disbursement awaits a checker" in words
    # The maker's double click is the same entry.
    rv = disburse(maker, approved, token)
    assert rv.status_code == 302
    assert "already entered (reference BOC-PAY-0001)" in page(maker, rv.headers["Location"])
    assert [e["type"] for e in app.extensions["xinbao"].store.events(approved)].count(
        "disbursement_entered") == 1


def test_a_checker_confirms_and_the_loan_shows_who_checked(app, entered):
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{entered}")
    assert "Awaiting your check" in text(html)
    assert 'name="confirm_payout"' in html and "Send the disbursement back" in html
    rv = check(checker, entered, html)
    assert rv.status_code == 302, rv.get_data(as_text=True)
    deal = stored(app, entered)
    assert deal.state == "disbursed"
    assert (deal.get("loan")["officer"], deal.get("loan")["checker"]) == ("boc-officer",
                                                                         "boc-checker")
    words = text(page(checker, rv.headers["Location"]))
    assert "Disbursement of USD 80,000.00 on deal" in words and "confirmed" in words
    assert "boc-officer, reference BOC-PAY-0001" in words and "checked by boc-checker" in words
    assert "Disbursement awaiting a checker" not in words
    # The double click records nothing more.
    events = len(app.extensions["xinbao"].store.events(entered))
    rv = check(checker, entered, html)
    assert rv.status_code == 302
    assert "already confirmed" in page(checker, rv.headers["Location"])
    assert len(app.extensions["xinbao"].store.events(entered)) == events


def test_the_maker_cannot_confirm_their_own_disbursement(app, entered):
    maker = signed_in(app, "boc-officer")
    html = page(maker, f"/bank/deals/{entered}")
    rv = check(maker, entered, html)
    assert rv.status_code == 403 and rv.mimetype == "text/html"
    assert "you entered this disbursement" in rv.get_data(as_text=True)
    assert stored(app, entered).state == "approved"


def test_a_checker_who_entered_it_still_cannot_confirm_it(app, approved, threshold):  # noqa: F811
    checker = signed_in(app, "boc-checker")
    _, token = form_page(checker, approved)
    assert disburse(checker, approved, token).status_code == 302
    html = page(checker, f"/bank/deals/{approved}")
    assert 'name="confirm_payout"' not in html and "Recall my disbursement" in html
    rv = check(checker, approved, html)
    assert rv.status_code == 403
    assert stored(app, approved).state == "approved"


def test_an_officer_without_the_checker_role_can_neither_confirm_nor_send_back(app, entered):
    app.extensions["xinbao_users"].add(UserSpec("boc-clerk", bank_id=BOC), DEMO_PASSWORD)
    clerk = signed_in(app, "boc-clerk")
    html = page(clerk, f"/bank/deals/{entered}")
    assert "Awaiting a check by an officer with the checker role" in text(html)
    assert "confirm_payout" not in html and "send_back_payout" not in html
    ref = stored(app, entered).get("pending_disbursement")["ref"]
    token = csrf_of(html)
    for action, extra in (("confirm_payout", {}), ("send_back_payout", {"reason": "no"})):
        rv = clerk.post(f"/bank/deals/{entered}/disbursement/check",
                        data={action: "x", "csrf_token": token, "payout_ref": ref, **extra})
        assert rv.status_code == 403, action
        assert "only an officer with the checker role" in rv.get_data(as_text=True)
    assert stored(app, entered).get("pending_disbursement")["ref"] == ref


def test_a_checker_sends_it_back_with_a_reason_and_the_maker_enters_it_anew(app, entered):
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{entered}")
    rv = check(checker, entered, html, "send_back_payout", reason="")
    assert rv.status_code == 422 and 'id="reason-error"' in rv.get_data(as_text=True)
    rv = check(checker, entered, html, "send_back_payout", reason="Wrong value date.\r\nRedo.")
    assert rv.status_code == 302
    assert "sent back to its maker" in page(checker, rv.headers["Location"])
    deal = stored(app, entered)
    assert deal.state == "approved" and not deal.get("pending_disbursement")
    assert deal.get("returned_disbursement")["reason"] == "Wrong value date.\nRedo."
    maker = signed_in(app, "boc-officer")
    html = page(maker, f"/bank/deals/{entered}")
    assert "was sent back by boc-checker" in text(html) and 'name="disburse"' in html


def test_the_maker_recalls_it(app, entered):
    maker = signed_in(app, "boc-officer")
    html = page(maker, f"/bank/deals/{entered}")
    rv = check(maker, entered, html, "send_back_payout", reason="typo in the reference")
    assert rv.status_code == 302
    assert "You recalled your disbursement" in page(maker, rv.headers["Location"])
    assert not stored(app, entered).get("pending_disbursement")


def test_a_stale_confirm_after_a_recall_and_a_new_entry_pays_nothing(app, entered):
    checker = signed_in(app, "boc-checker")
    old_page = page(checker, f"/bank/deals/{entered}")
    maker = signed_in(app, "boc-officer")
    html = page(maker, f"/bank/deals/{entered}")
    assert check(maker, entered, html, "send_back_payout", reason="typo").status_code == 302
    _, token = form_page(maker, entered)
    assert disburse(maker, entered, token, reference="BOC-PAY-0002",
                    amount="70000.00").status_code == 302
    rv = check(checker, entered, old_page)
    assert rv.status_code == 409
    words = text(rv.get_data(as_text=True))
    assert "Nothing was recorded: this disbursement is no longer as your page showed it" in words
    # The page shows the entry as it is now, with the form for it.
    assert "BOC-PAY-0002" in words and "USD 70,000.00" in words
    assert payout_ref(rv.get_data(as_text=True)) != payout_ref(old_page)
    deal = stored(app, entered)
    assert deal.state == "approved" and deal.get("pending_disbursement")["amount"] == "70000.00"


def test_another_disbursement_while_one_awaits_a_checker_is_stale(app, entered):
    colleague = signed_in(app, "boc-checker")
    token = csrf_of(page(colleague, f"/bank/deals/{entered}"))
    rv = disburse(colleague, entered, token, reference="BOC-PAY-0009")
    assert rv.status_code == 409
    assert "entered by boc-officer awaits a checker" in text(rv.get_data(as_text=True))
    assert stored(app, entered).get("pending_disbursement")["reference"] == "BOC-PAY-0001"


def test_csrf_another_bank_and_an_exporter_are_refused(app, entered):
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{entered}")
    ref = payout_ref(html)
    rv = checker.post(f"/bank/deals/{entered}/disbursement/check",
                      data={"confirm_payout": "x", "payout_ref": ref})
    assert rv.status_code == 400
    icbc = signed_in(app, "icbc-checker")
    token = csrf_of(page(icbc, "/bank/"))
    rv = icbc.post(f"/bank/deals/{entered}/disbursement/check",
                   data={"confirm_payout": "x", "csrf_token": token, "payout_ref": ref})
    assert rv.status_code == 404
    exporter = signed_in(app, "haixin")
    token = csrf_of(page(exporter, "/exporter/"))
    rv = exporter.post(f"/bank/deals/{entered}/disbursement/check",
                       data={"confirm_payout": "x", "csrf_token": token, "payout_ref": ref})
    assert rv.status_code == 403
    rv = checker.post(f"/bank/deals/{entered}/disbursement/check",
                      data={"csrf_token": csrf_of(html), "payout_ref": ref})
    assert rv.status_code == 400  # no button named
    assert stored(app, entered).state == "approved"


def test_the_queue_rows_say_a_disbursement_awaits(app, entered):
    checker = signed_in(app, "boc-checker")
    html = page(checker, "/bank/?show=check")
    assert deal_ids(html) == [entered]
    words = text(html)
    assert "Disbursement to check: USD 80,000.00, by boc-officer" in words
    assert "1st approval" not in words
    # Its time left runs to the approval's lapse, 30 days after it was given.
    assert "30 d 0 h by 2026-12-24 17:00" in words, words
    maker = signed_in(app, "boc-officer")
    html = page(maker, "/bank/?show=mine")
    assert deal_ids(html) == [entered]
    assert "Disbursement to check: USD 80,000.00, by boc-officer" in text(html)
    assert deal_ids(page(signed_in(app, "icbc-checker"), "/bank/?show=check")) == []


def test_the_exporter_sees_nothing_of_the_check(app, entered):
    exporter = signed_in(app, "haixin")
    switch(exporter, "en", page(exporter, "/exporter/"))
    words = text(page(exporter, f"/exporter/deals/{entered}"))
    assert "BOC-PAY-0001" not in words and "boc-officer" not in words
    assert "checker" not in words.lower()


def test_the_card_in_chinese(app, entered):
    checker = signed_in(app, "boc-checker")
    switch(checker, "zh", page(checker, "/bank/"))
    html = page(checker, f"/bank/deals/{entered}")
    assert lang_of(html) == "zh-CN"
    assert "Disbursement awaiting a checker" not in html and "Confirm the disbursement" not in html
