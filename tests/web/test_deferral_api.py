"""Deferrals and the check of a large disbursement through the JSON API."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.conftest import DEMO_TODAY
from tests.web.conftest import error_of
from tests.web.test_servicing_api import approved, post  # noqa: F401
from tests.workflow.test_servicing import DUE
from workflow import keys


def paid_out(api, deal_id: str) -> None:
    rv = post(api, deal_id, "disbursement", amount="80000.00",
              value_date=DEMO_TODAY.isoformat(), reference="P-1", officer="li")
    assert rv.status_code == 200, rv.get_json()


def test_a_deferral_granted_and_one_refused_with_the_insurers_reason(api, approved):  # noqa: F811
    paid_out(api, approved)
    new_due = (DUE + timedelta(days=30)).isoformat()
    rv = post(api, approved, "deferrals", new_due_date=new_due, reference="D-1",
              note="season", officer="li")
    assert rv.status_code == 200, rv.get_json()
    deal = rv.get_json()
    assert deal["loan"]["due_date"] == new_due and deal["deferrals"][0]["granted"] is True
    # The same request again is the same deferral.
    again = post(api, approved, "deferrals", new_due_date=new_due, reference="D-1")
    assert again.status_code == 200 and len(again.get_json()["deferrals"]) == 1
    rv = post(api, approved, "deferrals", new_due_date=(DUE + timedelta(days=400)).isoformat(),
              reference="D-2")
    assert rv.status_code == 422
    error = rv.get_json()["error"]
    assert error["code"] == "DEFERRAL_REFUSED"
    assert error["fields"]["new_due_date"][0].startswith("DEFERRAL_BEYOND_COVER")
    # The exporter sees its new due date and the answers, not the bank's notes or officers.
    mine = api.get(approved).get_json()
    assert mine["loan"]["due_date"] == new_due
    assert [d["granted"] for d in mine["deferrals"]] == [True, False]
    for item in mine["deferrals"]:
        assert not {"officer", "reference", "note"} & item.keys()


def test_deferral_refusals_name_the_field(api, approved):  # noqa: F811
    paid_out(api, approved)
    for body, field in (
        ({"new_due_date": "2027-02-30", "reference": "D"}, "new_due_date"),
        ({"new_due_date": DUE.isoformat(), "reference": "D"}, "new_due_date"),
        ({"new_due_date": (DUE + timedelta(days=9)).isoformat(), "reference": "a\x00b"},
         "reference"),
        ({"new_due_date": (DUE + timedelta(days=9)).isoformat()}, "reference"),
    ):
        rv = post(api, approved, "deferrals", **body)
        assert rv.status_code == 422, (body, rv.get_json())
        assert field in error_of(rv, 422)["fields"], rv.get_json()
    assert post(api, approved, "deferrals", who="icbc", new_due_date="2027-03-01",
                reference="D").status_code == 404
    assert post(api, approved, "deferrals", who="haixin", new_due_date="2027-03-01",
                reference="D").status_code == 403


def test_the_insurer_unreachable_is_a_503_and_nothing_changes(app, api, approved, monkeypatch):  # noqa: F811
    from workflow.gateway import InsurerUnavailable

    paid_out(api, approved)
    before = api.get(approved, "boc").get_json()

    def down(request):
        raise InsurerUnavailable("timeout")

    monkeypatch.setattr(app.extensions["xinbao"].insurer, "consent_to_deferral", down)
    rv = post(api, approved, "deferrals", new_due_date="2027-03-01", reference="D-1")
    assert rv.status_code == 503 and rv.headers["Retry-After"]
    assert api.get(approved, "boc").get_json()["updated_at"] == before["updated_at"]


def _lower_the_check_amount(app) -> None:
    redis = app.extensions["xinbao"].store.redis
    record = json.loads(redis.get(keys.bank("BOC-NB")))
    record["second_approval_above"] = "50000.00"
    redis.set(keys.bank("BOC-NB"), json.dumps(record))


def test_a_large_disbursement_is_checked_through_the_api(app, api, approved):  # noqa: F811
    _lower_the_check_amount(app)
    rv = post(api, approved, "disbursement", amount="80000.00",
              value_date=DEMO_TODAY.isoformat(), reference="P-1", officer="boc-officer")
    assert rv.status_code == 200 and rv.get_json()["state"] == "approved"
    entered = rv.get_json()["pending_disbursement"]
    assert entered["amount"] == "80000.00"
    # Hidden from the exporter and from the events it reads.
    assert api.get(approved).get_json()["pending_disbursement"] is None
    kinds = [e["type"] for e in api.events(approved).get_json()["events"]]
    assert "disbursement_entered" not in kinds
    check = "disbursement/check"
    same = post(api, approved, check, decision="confirm", ref=entered["ref"],
                officer="boc-officer")
    assert error_of(same, 403)["code"] == "SAME_OFFICER"  # the maker checks first for this
    stale = post(api, approved, check, decision="confirm", ref="0" * 16, officer="boc-checker")
    assert stale.status_code == 409
    bad = post(api, approved, check, decision="send_back", ref=entered["ref"])
    assert "reason" in error_of(bad, 422)["fields"]
    assert post(api, approved, check, decision="confirm", ref="nothex").status_code == 422
    rv = post(api, approved, check, decision="confirm", ref=entered["ref"], officer="boc-checker")
    assert rv.status_code == 200, rv.get_json()
    deal = rv.get_json()
    assert deal["state"] == "disbursed" and deal["loan"]["checker"] == "boc-checker"
    mine = api.get(approved).get_json()
    assert "checker" not in mine["loan"] and "officer" not in mine["loan"]
    assert "officer" not in mine["decision"]  # who approved stays with the bank


def test_a_deal_on_hold_says_why_and_until_when(app, api):
    from tests.conftest import make_application

    workflow = app.extensions["xinbao"]
    deal = workflow.submit(make_application()).deal
    workflow.hold(deal.id)  # the insurer could not be asked
    seen = api.get(deal.id).get_json()
    assert seen["state"] == "on_hold"
    assert seen["hold"]["reason"] == "INSURER_UNAVAILABLE" and seen["hold"]["until"]
    workflow.clock.advance(seconds=workflow.settings.hold_retry_seconds + 1)
    workflow.verify(deal.id)  # the insurer answers again
    resumed = api.get(deal.id).get_json()
    assert resumed["state"] != "on_hold" and resumed["hold"] is None
