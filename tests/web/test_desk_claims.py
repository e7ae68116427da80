"""The officer's notice, claim and recovery forms on the deal page: who may act, the workflow's
rules beside the fields, stale and repeated posts, CSRF, what the page shows at each step."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.conftest import DEMO_TODAY
from tests.web.test_auth import csrf_of
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_desk_servicing import approved, form_page  # noqa: F401  (fixture)
from tests.web.test_i18n import lang_of, switch
from tests.web.test_servicing_api import post
from tests.workflow.test_servicing import DUE

# The demo policy's defaults: the notice is due 60 days after the due date, the claim 120.
NOTICE_BY = DUE + timedelta(days=60)
CLAIM_BY = DUE + timedelta(days=120)


@pytest.fixture
def overdue(app, api, approved, clock) -> str:  # noqa: F811
    """Haixin's USD 80,000 advance at BOC-NB (invoice total USD 100,000), unpaid 10 days after
    its due date: overdue, no notice yet."""
    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="BOC-PAY-0001").status_code == 200
    clock.advance(days=(DUE - DEMO_TODAY).days + 10)
    assert app.extensions["xinbao"].sweep_arrears() == [approved]
    return approved


def notice(client, deal_id: str, token: str | None):
    data = {"notice": "Send the notice of possible loss"}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/notice", data=data)


def claim(client, deal_id: str, token: str | None, documents=("policy", "commercial_invoice"),
          **values: str):
    data = {"claim": "File the claim", "loss_amount": "80000.00", "documents": list(documents),
            **values}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/claim", data=data)


def recover(client, deal_id: str, token: str | None, **values: str):
    data = {"recover": "Record the recovery", "amount": "10000.00", "reference": "REC-1",
            **values}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/recoveries", data=data)


def stored(app, deal_id: str):
    return app.extensions["xinbao"].store.get(deal_id)


def events(app, deal_id: str) -> int:
    return len(app.extensions["xinbao"].store.events(deal_id))


def error_of(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error">([^<]*)<', html)
    assert found, f"no error beside {field}"
    return found.group(1)


@pytest.fixture
def noticed(app, overdue) -> str:
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, overdue)
    assert notice(client, overdue, token).status_code == 302
    return overdue


@pytest.fixture
def indemnified(app, noticed) -> str:
    """The claim of USD 80,000 filed on the desk and paid at once (the worker runs eagerly):
    covered loss USD 80,000, indemnity 90 % of it, USD 72,000."""
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    assert claim(client, noticed, token).status_code == 302
    assert stored(app, noticed).state == "indemnified"
    return noticed


# --- the notice of possible loss ---------------------------------------------------------------


def test_an_overdue_deal_offers_the_notice_with_its_deadline(app, overdue):
    html, _ = form_page(signed_in(app, "boc-officer"), overdue)
    assert f'action="/bank/deals/{overdue}/notice"' in html
    assert "Send the notice of possible loss" in html
    assert f"Due by {NOTICE_BY.isoformat()}: 50 days left." in html
    assert "cannot be withdrawn" in html
    assert 'name="claim"' not in html and 'name="recover"' not in html
    assert "<script" not in html


def test_the_notice_is_sent_once_and_the_claim_form_follows(app, overdue):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, overdue)
    rv = notice(client, overdue, token)
    assert rv.status_code == 302 and rv.headers["Location"] == f"/bank/deals/{overdue}"
    deal = stored(app, overdue)
    today = (DUE + timedelta(days=10)).isoformat()
    assert deal.state == "overdue" and deal.fields["notice_filed_at"] == today
    html = page(client, rv.headers["Location"])
    assert f"Notice of possible loss on deal {overdue} sent to the insurer on {today}." in html
    assert f"sent {today}" in html
    assert 'name="notice"' not in html
    # The claim form, the loss filled in with the principal outstanding.
    assert f'action="/bank/deals/{overdue}/claim"' in html
    assert 'name="loss_amount"' in html and 'value="80000.00"' in html
    for code in ("policy", "commercial_invoice", "bill_of_lading", "customs_declaration",
                 "buyer_correspondence", "statement_of_account"):
        assert f'type="checkbox" value="{code}"' in html, code
    assert "Bill of lading" in html and "At most the invoice total, USD 100,000.00" in html
    assert f"Due by {CLAIM_BY.isoformat()}: 110 days left." in html
    # A double click: the same notice, nothing recorded twice.
    count = events(app, overdue)
    rv = notice(client, overdue, token)
    assert rv.status_code == 302
    assert f"already sent, on {today}" in page(client, rv.headers["Location"])
    assert events(app, overdue) == count


def test_a_late_notice_says_what_it_costs_and_the_indemnity_is_cut(app, overdue, clock):
    clock.advance(days=60 - 10 + 5)  # 5 days after the notice deadline
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, overdue)
    assert f"the deadline was {NOTICE_BY.isoformat()}" in html
    assert "5 days late, and the insurer cuts the indemnity by 20%" in html
    assert notice(client, overdue, token).status_code == 302
    html, token = form_page(client, overdue)
    assert "5 days late" in html and stored(app, overdue).fields["notice_late_days"] == "5"
    assert claim(client, overdue, token).status_code == 302
    html = page(client, f"/bank/deals/{overdue}")
    # 80,000 x 90 % x (1 - 20 %)
    assert "Indemnity paid: USD 57,600.00 on a covered loss of USD 80,000.00." in html
    assert "The notice of possible loss reached the insurer after its deadline." in html


def test_a_notice_more_than_30_days_late_is_said_to_void_the_claim(app, overdue, clock):
    clock.advance(days=60 - 10 + 31)
    app.extensions["xinbao"].sweep_arrears()  # records the missed deadline
    html, _ = form_page(signed_in(app, "boc-officer"), overdue)
    assert "31 days late: more than 30 days late, the insurer rejects the claim" in html
    assert "Deadlines missed: the notice of possible loss." in html


def test_a_notice_on_a_deal_not_overdue_is_refused_409(app, approved, api):  # noqa: F811
    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="BOC-PAY-0001").status_code == 200
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, approved)
    assert 'name="notice"' not in html  # a disbursed deal takes no notice
    count = events(app, approved)
    rv = notice(client, approved, token)
    assert rv.status_code == 409 and rv.mimetype == "text/html"
    assert "Nothing was recorded" in rv.get_data(as_text=True)
    assert events(app, approved) == count and not stored(app, approved).fields.get(
        "notice_filed_at")


# --- the claim -----------------------------------------------------------------------------------


def test_the_claim_is_filed_decided_and_its_documents_shown(app, noticed):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    rv = claim(client, noticed, token, documents=("policy", "bill_of_lading"),
               other="Buyer's insolvency notice")
    assert rv.status_code == 302
    deal = stored(app, noticed)
    assert deal.get("claim")["documents"] == ["policy", "bill_of_lading",
                                              "Buyer's insolvency notice"]
    assert deal.get("claim")["officer"] == "boc-officer"
    assert deal.state == "indemnified"  # the eager worker asked the insurer at once
    html = page(client, rv.headers["Location"])
    assert f"Claim of USD 80,000.00 filed on deal {noticed}" in html
    assert "Insurance policy; Bill of lading; Buyer&#39;s insolvency notice" in html
    assert "Indemnity paid: USD 72,000.00 on a covered loss of USD 80,000.00." in html
    assert 'name="claim"' not in html and 'name="loss_amount"' not in html
    assert f'action="/bank/deals/{noticed}/recoveries"' in html
    assert "No recovery recorded yet." in html


def test_a_filed_claim_awaits_the_insurer_until_the_worker_settles_it(app, noticed,
                                                                     monkeypatch):
    from web.desk import claims

    dispatched: list[str] = []
    monkeypatch.setattr(claims, "dispatch_settle_claim", dispatched.append)
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    rv = claim(client, noticed, token)
    assert rv.status_code == 302 and dispatched == [noticed]
    assert stored(app, noticed).state == "claim_filed"
    html = page(client, rv.headers["Location"])
    assert "Claim filed, awaiting the insurer's decision." in html
    assert 'name="claim"' not in html and 'name="recover"' not in html
    # The same claim again (a double click) is the same claim, dispatched no more.
    count = events(app, noticed)
    rv = claim(client, noticed, token)
    assert rv.status_code == 302 and events(app, noticed) == count
    assert "This claim was already filed" in page(client, rv.headers["Location"])
    app.extensions["xinbao"].settle_claim(noticed)
    html = page(client, f"/bank/deals/{noticed}")
    assert "awaiting the insurer" not in html and "Indemnity paid: USD 72,000.00" in html


@pytest.mark.parametrize(
    ("values", "documents", "field", "words"),
    [
        ({"loss_amount": "100000.01"}, ("policy",), "loss_amount",
         "at most the invoice total, USD 100,000.00"),
        ({"loss_amount": "0.00"}, ("policy",), "loss_amount", "greater than 0"),
        ({"loss_amount": "1e5"}, ("policy",), "loss_amount", "in digits"),
        ({}, (), "documents", "Tick the documents sent with the claim."),
        ({}, ("a-guessed-document",), "documents", "Tick documents from the list"),
        ({"other": "a\x00b"}, ("policy",), "other", "plain text"),
    ],
)
def test_claim_refusals_are_shown_beside_the_field(app, noticed, values, documents, field,
                                                   words):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    count = events(app, noticed)
    rv = claim(client, noticed, token, documents=documents, **values)
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert words in error_of(html, field)
    if "loss_amount" in values:
        assert f'value="{values["loss_amount"]}"' in html  # the input is kept
    assert events(app, noticed) == count and stored(app, noticed).state == "overdue"


def test_a_ticked_document_stays_ticked_after_a_refusal(app, noticed):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    rv = claim(client, noticed, token, documents=("bill_of_lading",), loss_amount="-1")
    assert rv.status_code == 422
    assert re.search(r'checked[^>]*value="bill_of_lading"|value="bill_of_lading"[^>]*checked',
                     rv.get_data(as_text=True))


def test_a_claim_before_the_notice_is_refused_409(app, overdue):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, overdue)
    rv = claim(client, overdue, token)
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "send the notice of possible loss before the claim" in html
    assert "“80000.00”" in html  # what was entered
    assert not stored(app, overdue).get("claim")


def test_a_second_claim_of_another_loss_is_refused_409(app, indemnified):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, indemnified)
    count = events(app, indemnified)
    rv = claim(client, indemnified, token, loss_amount="70000.00")
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "a claim of USD 80,000.00 was already filed" in html and "by boc-officer" in html
    assert "“70000.00”" in html
    assert events(app, indemnified) == count


def test_a_claim_after_its_deadline_is_rejected_with_the_reason(app, noticed, clock):
    clock.advance(days=111)  # the day after the claim deadline
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, noticed)
    assert f"the claim deadline was {CLAIM_BY.isoformat()}" in html
    assert claim(client, noticed, token).status_code == 302
    assert stored(app, noticed).state == "claim_rejected"
    html = page(client, f"/bank/deals/{noticed}")
    assert "Claim rejected by the insurer." in html
    assert "The claim reached the insurer after the policy&#39;s claim deadline." in html
    assert 'name="recover"' not in html


# --- recoveries ----------------------------------------------------------------------------------


def test_recoveries_are_recorded_with_the_insurers_and_the_banks_shares(app, indemnified):
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, indemnified)
    assert "the insurer USD 72,000.00 (the indemnity), your bank USD 8,000.00" in html
    assert "Up to USD 80,000.00 more can be recorded." in html
    rv = recover(client, indemnified, token)
    assert rv.status_code == 302
    html = page(client, rv.headers["Location"])
    assert f"Recovery of USD 10,000.00 recorded on deal {indemnified}." in html
    # 72,000 / 80,000 of it to the insurer
    row = re.search(r"<tr><td class=\"nowrap\">[^<]*</td>(.*?)</tr>", html).group(1)
    assert "USD 10,000.00" in row and "USD 9,000.00" in row and "USD 1,000.00" in row
    assert "REC-1" in row and "boc-officer" in row
    assert recover(client, indemnified, token, amount="3333.33",
                   reference="REC-2").status_code == 302
    html = page(client, f"/bank/deals/{indemnified}")
    assert "USD 13,333.33" in html and "USD 12,000.00" in html  # the total, the insurer's
    assert "Up to USD 66,666.67 more can be recorded." in html
    assert [r["to_insurer"] for r in stored(app, indemnified).get("recoveries")] == [
        "9000.00", "3000.00"]


def test_a_double_click_records_the_recovery_once(app, indemnified):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, indemnified)
    assert recover(client, indemnified, token).status_code == 302
    count = events(app, indemnified)
    rv = recover(client, indemnified, token)
    assert rv.status_code == 302 and events(app, indemnified) == count
    assert "already recorded (reference REC-1)" in page(client, rv.headers["Location"])


def test_a_known_reference_with_another_amount_is_refused_409(app, indemnified):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, indemnified)
    assert recover(client, indemnified, token).status_code == 302
    rv = recover(client, indemnified, token, amount="500.00")
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "a recovery with reference REC-1 is already recorded, for USD 10,000.00" in html
    assert len(stored(app, indemnified).get("recoveries")) == 1


def test_recoveries_above_the_covered_loss_are_shown_beside_the_amount(app, indemnified):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, indemnified)
    assert recover(client, indemnified, token, amount="79000.00").status_code == 302
    rv = recover(client, indemnified, token, amount="1000.01", reference="REC-2")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert "at most USD 1,000.00: recoveries total at most the covered loss, USD 80,000.00" in (
        error_of(html, "amount"))
    assert 'value="1000.01"' in html and 'value="REC-2"' in html
    rv = recover(client, indemnified, token, amount="", reference="")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert error_of(html, "amount") and error_of(html, "reference")
    assert len(stored(app, indemnified).get("recoveries")) == 1


def test_a_recovery_before_the_indemnity_is_refused_409(app, noticed):
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    rv = recover(client, noticed, token)
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "Nothing was recorded: this deal is no longer as your page showed it" in html
    assert "“REC-1”" in html
    assert not stored(app, noticed).get("recoveries")


# --- who may act --------------------------------------------------------------------------------


def test_another_banks_officer_gets_404_and_nothing_changes(app, noticed):
    client = signed_in(app, "icbc-officer")
    token = csrf_of(page(client, "/bank/"))
    count = events(app, noticed)
    assert notice(client, noticed, token).status_code == 404
    assert claim(client, noticed, token).status_code == 404
    assert recover(client, noticed, token).status_code == 404
    assert claim(client, "DL-guessed-0001", token).status_code == 404
    assert events(app, noticed) == count
    assert "Arrears and the insurer" not in page(client, f"/bank/deals/{noticed}", 404)


def test_a_colleague_at_the_same_bank_may_act(app, overdue):
    client = signed_in(app, "boc-checker")
    _, token = form_page(client, overdue)
    assert notice(client, overdue, token).status_code == 302
    assert stored(app, overdue).fields["notice_filed_at"]


def test_exporter_user_is_refused_403(app, noticed):
    client = signed_in(app, "haixin")
    token = csrf_of(client.get("/exporter/").get_data(as_text=True))
    assert notice(client, noticed, token).status_code == 403
    assert claim(client, noticed, token).status_code == 403
    assert recover(client, noticed, token).status_code == 403
    assert not stored(app, noticed).get("claim")


def test_missing_csrf_token_is_400_and_nothing_changes(app, overdue):
    client = signed_in(app, "boc-officer")
    form_page(client, overdue)
    assert notice(client, overdue, None).status_code == 400
    assert notice(client, overdue, "not-the-token").status_code == 400
    assert not stored(app, overdue).fields.get("notice_filed_at")


def test_stale_login_is_sent_to_reauthenticate(app, noticed, users_clock):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, noticed)
    users_clock.advance(seconds=app.extensions["xinbao_settings"].fresh_login_seconds + 1)
    rv = claim(client, noticed, token)
    assert rv.status_code == 302 and rv.headers["Location"].startswith("/reauthenticate")
    assert not stored(app, noticed).get("claim")


def test_an_unreachable_insurer_sends_nothing_and_says_so(app, overdue, monkeypatch):
    from workflow.gateway import InsurerUnavailable

    def down(*args):
        raise InsurerUnavailable("timeout")

    monkeypatch.setattr(app.extensions["xinbao"].insurer, "notify_possible_loss", down)
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, overdue)
    rv = notice(client, overdue, token)
    assert rv.status_code == 503 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert "the insurer cannot be reached right now" in html and 'name="notice"' in html
    assert not stored(app, overdue).fields.get("notice_filed_at")


def test_a_zh_desk_page_of_an_overdue_deal(app, noticed):
    client = signed_in(app, "boc-officer")
    switch(client, "zh", page(client, "/bank/"))
    html, token = form_page(client, noticed)
    assert lang_of(html) == "zh-CN"
    assert "索赔" in html and "提单" in html and "可能损失通知" in html
    rv = claim(client, noticed, token, loss_amount="100000.01")
    assert rv.status_code == 422 and "USD 100,000.00" in error_of(rv.get_data(as_text=True),
                                                                  "loss_amount")
