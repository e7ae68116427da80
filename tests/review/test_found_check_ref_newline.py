"""Found in review: POST /deals/<id>/disbursement/check accepted a ``ref`` with a trailing
newline (``^...$`` lets one through), then answered 409 "changed since your page was loaded"
instead of a 422 naming the field. The new fields' bad bytes are checked here too: each a 4xx
naming its field, nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_TODAY
from tests.review.test_found_disbursement_check_visibility import entered, post  # noqa: F401
from tests.web.conftest import error_of


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "confirm", "ref": "{ref}\n"}, "ref"),
        ({"decision": "confirm", "ref": "{ref}\r\n"}, "ref"),
        ({"decision": "confirm", "ref": "{ref}".upper()}, "ref"),
        ({"decision": "confirm", "ref": ["{ref}"]}, "ref"),
        ({"decision": "confirm", "ref": "{ref}", "officer": "boc-checker\x00"}, "officer"),
        ({"decision": "confirm", "ref": "{ref}", "officer": "x" * 65}, "officer"),
        ({"decision": "confirm", "ref": "{ref}", "officer": "\u202eboc-checker"}, "officer"),
        ({"decision": "send_back", "ref": "{ref}", "reason": "no\x00"}, "reason"),
        ({"decision": "send_back", "ref": "{ref}", "reason": " "}, "reason"),
        ({"decision": "send_back", "ref": "{ref}"}, "reason"),
        ({"decision": "approve", "ref": "{ref}"}, "decision"),
    ],
)
def test_a_bad_check_is_a_422_naming_the_field_and_changes_nothing(api, app, entered,  # noqa: F811
                                                                   body, field):
    store = app.extensions["xinbao"].store
    before = store.get(entered)
    ref = before.get("pending_disbursement")["ref"]
    body = {k: (v.replace("{ref}", ref) if isinstance(v, str) else
                [x.replace("{ref}", ref) for x in v] if isinstance(v, list) else v)
            for k, v in body.items()}
    body.setdefault("officer", "boc-checker")
    error = error_of(post(api, entered, "disbursement/check", **body), 422)
    assert field in error["fields"], error
    assert store.get(entered).version == before.version


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"new_due_date": "2027-02-30"}, "new_due_date"),
        ({"new_due_date": 20270208}, "new_due_date"),
        ({"new_due_date": None}, "new_due_date"),
        ({"reference": ""}, "reference"),
        ({"reference": "D\x00"}, "reference"),
        ({"reference": "x" * 65}, "reference"),
        ({"note": "\x07"}, "note"),
        ({"note": "x" * 501}, "note"),
        ({"officer": "\ud800"}, "officer"),
        ({"new_due_date": DEMO_TODAY.isoformat()}, "new_due_date"),
        ({"new_due_date": "9999-12-31"}, "new_due_date"),
    ],
)
def test_a_bad_deferral_is_a_422_naming_the_field(api, app, entered, body, field):  # noqa: F811
    store = app.extensions["xinbao"].store
    ref = store.get(entered).get("pending_disbursement")["ref"]
    assert post(api, entered, "disbursement/check", decision="confirm", ref=ref,
                officer="boc-checker").status_code == 200
    before = store.get(entered)
    full = {"new_due_date": "2027-02-08", "reference": "D-1", "officer": "boc-officer",
            **body}
    error = error_of(post(api, entered, "deferrals", **full), 422)
    assert field in error["fields"], error
    after = store.get(entered)
    assert after.get("loan") == before.get("loan") and after.state == before.state
