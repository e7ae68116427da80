"""The officer's deferral (延期还本付息) form on the deal page and the deferrals' history; the
exporter's page showing them in its own words, without the bank's officers, references, notes."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tests.web.test_auth import csrf_of
from tests.web.test_desk import page, signed_in, users_clock  # noqa: F401  (fixture)
from tests.web.test_desk_servicing import (  # noqa: F401  (fixtures)
    approved,
    disbursed,
    form_page,
    repay,
)
from tests.web.test_i18n import lang_of, switch
from tests.workflow.test_servicing import DUE
from workflow.gateway import InsurerUnavailable

NEW_DUE = DUE + timedelta(days=30)  # 2027-02-08: the form's default on the demo day
NOTE = "Buyer's season slipped a month"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def defer(client: FlaskClient, deal_id: str, token: str | None, **values: str):
    data = {"defer": "x", "new_due_date": NEW_DUE.isoformat(), "reference": "DEF-0001",
            "note": NOTE, **values}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/bank/deals/{deal_id}/deferrals", data=data)


def stored(app, deal_id: str):
    return app.extensions["xinbao"].store.get(deal_id)


def error_of(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error">([^<]*)<', html)
    assert found, f"no error beside {field}"
    return found.group(1)


@pytest.fixture
def overdue(app, disbursed, clock) -> str:  # noqa: F811
    """The advance unpaid 10 days after its due date."""
    clock.advance(days=(DUE - clock().date()).days + 10)
    assert app.extensions["xinbao"].sweep_arrears() == [disbursed]
    return disbursed


def test_a_disbursed_deal_offers_the_form_with_its_dates(app, disbursed):  # noqa: F811
    html, _ = form_page(signed_in(app, "boc-officer"), disbursed)
    assert f'action="/bank/deals/{disbursed}/deferrals"' in html
    assert f'name="new_due_date" required type="date" value="{NEW_DUE.isoformat()}"' in html
    assert 'name="reference"' in html and 'name="note"' in html
    words = text(html)
    assert "Defer the due date (延期还本付息)" in words
    assert f"Due date now {DUE.isoformat()}" in words and f"First due date {DUE.isoformat()}" in (
        words)
    assert "Deferrals granted so far 0" in words and "No deferral asked yet." in words


def test_an_approved_deal_has_no_deferral_form(app, approved):  # noqa: F811
    html, _ = form_page(signed_in(app, "boc-officer"), approved)
    assert 'name="defer"' not in html and "Deferral (延期还本付息)" not in html


def test_a_granted_deferral_moves_the_due_date_and_is_recorded_once(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = defer(client, disbursed, token)
    assert rv.status_code == 302 and rv.headers["Location"] == f"/bank/deals/{disbursed}"
    deal = stored(app, disbursed)
    assert deal.get("loan")["due_date"] == NEW_DUE.isoformat()
    assert deal.fields["deferral_count"] == "1"
    html = page(client, rv.headers["Location"])
    words = text(html)
    assert f"now falls due on {NEW_DUE.isoformat()}" in words
    assert f"deferred from {DUE.isoformat()}" in words  # the loan's due date row
    assert "Deferrals granted so far 1" in words
    assert f"{DUE.isoformat()} → {NEW_DUE.isoformat()}" in words
    assert "Granted" in words and f"DEF-{disbursed}-1" in words  # the insurer's reference
    assert "DEF-0001" in words and "boc-officer" in words and NOTE in words.replace("&#39;", "'")
    # The next request starts from the new due date.
    assert f'value="{(NEW_DUE + timedelta(days=30)).isoformat()}"' in html
    # A double click: the same deferral, nothing recorded twice.
    rv = defer(client, disbursed, token)
    assert rv.status_code == 302
    assert "already recorded (reference DEF-0001)" in page(client, rv.headers["Location"])
    types = [e["type"] for e in app.extensions["xinbao"].store.events(disbursed)]
    assert types.count("deferred") == 1


def test_the_forms_own_rules_are_shown_beside_the_fields(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = defer(client, disbursed, token, new_due_date="08/02/2027", reference="  ", note="a\x07")
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    for name in ("new_due_date", "reference", "note"):
        assert f'id="{name}-error"' in html, name
    assert 'value="08/02/2027"' in html
    assert not stored(app, disbursed).get("deferrals")


def test_a_date_the_workflow_refuses_is_said_beside_the_field(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = defer(client, disbursed, token, new_due_date=DUE.isoformat())
    assert rv.status_code == 422
    html = rv.get_data(as_text=True)
    assert error_of(html, "new_due_date") == (
        f"Must be after the current due date, {DUE.isoformat()}.")
    assert "DEF-0001" in html  # the input is kept
    wf = app.extensions["xinbao"]
    wf.settings = dataclasses.replace(wf.settings, deferral_latest_date=NEW_DUE)
    rv = defer(client, disbursed, token, new_due_date=(NEW_DUE + timedelta(days=1)).isoformat())
    assert rv.status_code == 422
    assert f"on or before {NEW_DUE.isoformat()}" in error_of(rv.get_data(as_text=True),
                                                              "new_due_date")
    assert not stored(app, disbursed).get("deferrals")


def test_the_insurers_refusal_is_shown_with_its_reasons_and_recorded(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    far = (DUE + timedelta(days=181)).isoformat()
    rv = defer(client, disbursed, token, new_due_date=far)
    assert rv.status_code == 422 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    words = text(html)
    assert f"Not deferred: the insurer refused to let its cover follow a due date of {far}" in words
    assert "The insurer's cover cannot follow the due date that far." in words.replace("&#39;", "'")
    assert "DEFERRAL_BEYOND_COVER" in words
    assert f'value="{far}"' in html and 'value="DEF-0001"' in html  # the form is kept
    assert "Refused" in words  # and the history has it
    deal = stored(app, disbursed)
    assert deal.get("loan")["due_date"] == DUE.isoformat()
    assert not deal.fields.get("deferral_count")
    assert deal.get("deferrals")[0]["granted"] is False
    # The same reference for another date is a mistake to show, not a new request.
    rv = defer(client, disbursed, token, new_due_date=NEW_DUE.isoformat())
    assert rv.status_code == 409
    assert "reference DEF-0001 was already used" in text(rv.get_data(as_text=True))
    # A new reference asks again.
    rv = defer(client, disbursed, token, reference="DEF-0002")
    assert rv.status_code == 302
    assert stored(app, disbursed).get("loan")["due_date"] == NEW_DUE.isoformat()


def test_an_overdue_advance_deferred_is_current_again(app, overdue):
    client = signed_in(app, "boc-officer")
    html, token = form_page(client, overdue)
    assert "Arrears and the insurer" in html and 'name="defer"' in html
    later = (DUE + timedelta(days=40)).isoformat()
    assert f'value="{later}"' in html  # today + 30 days, past the due date
    rv = defer(client, overdue, token, new_due_date=later)
    assert rv.status_code == 302
    assert stored(app, overdue).state == "disbursed"
    html = page(client, rv.headers["Location"])
    assert "Arrears and the insurer" not in html
    row = re.search(r"<tr>\s*<td class=\"nowrap\">[^<]*</td>(.*?)</tr>", html, re.S).group(1)
    assert '<td class="num">10</td>' in row  # days past due when asked


def test_asked_after_the_notice_deadline_the_insurer_refuses(app, disbursed, clock):  # noqa: F811
    clock.advance(days=(DUE - clock().date()).days + 61)
    app.extensions["xinbao"].sweep_arrears()
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = defer(client, disbursed, token, new_due_date=(DUE + timedelta(days=90)).isoformat())
    assert rv.status_code == 422
    assert "DEFERRAL_TOO_LATE" in rv.get_data(as_text=True)
    assert stored(app, disbursed).state == "overdue"


def test_insurer_unreachable_is_a_503_page_and_nothing_is_recorded(app, disbursed, monkeypatch):  # noqa: F811
    def down(request):
        raise InsurerUnavailable("timeout")

    monkeypatch.setattr(app.extensions["xinbao"].insurer, "consent_to_deferral", down)
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    rv = defer(client, disbursed, token)
    assert rv.status_code == 503 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert "the insurer cannot be reached right now" in html
    assert 'value="DEF-0001"' in html  # the form is kept to try again
    assert not stored(app, disbursed).get("deferrals")


def test_a_form_posted_after_the_advance_was_repaid_is_stale(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    assert repay(client, disbursed, token, amount="80000.00", reference="IN-1").status_code == 302
    rv = defer(client, disbursed, token)
    assert rv.status_code == 409
    html = rv.get_data(as_text=True)
    assert "this advance can no longer be deferred" in html
    assert "“DEF-0001”" in html and 'name="defer"' not in html


def test_csrf_another_bank_and_an_exporter_are_refused(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    assert defer(client, disbursed, None).status_code == 400
    icbc = signed_in(app, "icbc-officer")
    assert defer(icbc, disbursed, csrf_of(page(icbc, "/bank/"))).status_code == 404
    assert defer(icbc, "DL-guessed-0001", csrf_of(page(icbc, "/bank/"))).status_code == 404
    exporter = signed_in(app, "haixin")
    assert defer(exporter, disbursed, csrf_of(page(exporter, "/exporter/"))).status_code == 403
    assert not stored(app, disbursed).get("deferrals")


def test_the_exporter_sees_the_dates_and_the_insurers_answer_only(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    far = (DUE + timedelta(days=181)).isoformat()
    assert defer(client, disbursed, token, new_due_date=far, reference="DEF-X1").status_code == 422
    assert defer(client, disbursed, token).status_code == 302
    exporter = signed_in(app, "haixin")
    switch(exporter, "en", page(exporter, "/exporter/"))
    html = page(exporter, f"/exporter/deals/{disbursed}")
    words = text(html).replace("&#39;", "'")
    assert f"your bank deferred the due date from {DUE.isoformat()} to {NEW_DUE.isoformat()}" in (
        words) and "with the insurer’s consent" in words
    refused = "asked by your bank, was refused by the insurer"
    assert f"a deferral of the due date to {far} , {refused}" in words
    assert "The insurer's cover cannot follow the due date that far." in words
    for secret in ("DEF-0001", "DEF-X1", f"DEF-{disbursed}-", "boc-officer", "season slipped"):
        assert secret not in html, secret


def test_the_deferral_section_in_chinese(app, disbursed):  # noqa: F811
    client = signed_in(app, "boc-officer")
    _, token = form_page(client, disbursed)
    assert defer(client, disbursed, token).status_code == 302
    switch(client, "zh", page(client, "/bank/"))
    html = page(client, f"/bank/deals/{disbursed}")
    assert lang_of(html) == "zh-CN"
    assert "延期还本付息" in html
    for english in ("Defer the due date", "Deferrals granted so far", "Granted", "Asked on"):
        assert english not in html, english
    exporter = signed_in(app, "haixin")
    switch(exporter, "zh", page(exporter, "/exporter/"))
    html = page(exporter, f"/exporter/deals/{disbursed}")
    assert "your bank deferred" not in html and NEW_DUE.isoformat() in html
