"""Found in review: the checker confirms the maker's terms as shown, but the page rounds the
rate to two decimals of a percent (0.041250 shows as 4.12%), so the checker confirms a rate
they were not shown."""

from __future__ import annotations

import re

from tests.web.test_desk import page, signed_in


def test_checker_sees_the_exact_rate_they_confirm(app, api, large, users_clock):
    rv = api.decide(large, "boc", decision="approve", officer="boc-officer",
                    annual_rate="0.041250")
    assert rv.status_code == 200 and rv.get_json()["first_approval"]["annual_rate"] == "0.041250"
    html = page(signed_in(app, "boc-checker"), f"/bank/deals/{large}")
    terms = re.search(r"USD 320,000\.00 at ([^ ]+) a year", html)
    assert terms, "the first approval's terms are not on the page"
    assert terms.group(1) in ("4.125%", "0.041250"), terms.group(1)  # shown: 4.12%
