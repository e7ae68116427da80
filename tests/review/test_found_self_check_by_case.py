"""Found in review: the maker-checker rule compares officer names as typed, while the checker
role is looked up by the normalised username, so one person checks their own approval."""

from __future__ import annotations

import pytest

from tests.web.conftest import error_of
from tests.web.test_auth import csrf_of
from tests.web.test_desk import page, signed_in
from tests.web.test_desk_maker_checker import first_ref


@pytest.mark.parametrize("same_person", ["BOC-Checker", " boc-checker", "boc-checker "])
def test_api_checker_cannot_confirm_own_approval_under_another_spelling(api, large,
                                                                        same_person):
    first = api.decide(large, "boc", decision="approve", officer="boc-checker")
    assert first.get_json()["state"] == "pending_bank"
    # The same user, boc-checker, spelled differently: must be SAME_OFFICER, not an approval.
    rv = api.decide(large, "boc", decision="approve", officer=same_person)
    error_of(rv, 403, "SAME_OFFICER")
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"


def test_desk_checker_cannot_confirm_an_api_first_approval_in_their_own_name(app, api,
                                                                            large):
    api.decide(large, "boc", decision="approve", officer="BOC-CHECKER")
    checker = signed_in(app, "boc-checker")
    html = page(checker, f"/bank/deals/{large}")
    rv = checker.post(f"/bank/deals/{large}/decision",
                      data={"confirm": "Confirm", "csrf_token": csrf_of(html),
                            "first_ref": first_ref(html)})
    # boc-checker made the first approval (as "BOC-CHECKER"): the deal must still wait.
    assert api.get(large, "boc").get_json()["state"] == "pending_bank"
    assert rv.status_code == 403, rv.status_code
