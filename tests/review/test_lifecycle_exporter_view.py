"""Review: the exporter's API view shows the bank's own payment references and officers,
which the exporter's deal page deliberately leaves out (tests/web/test_portal_servicing.py)."""

from __future__ import annotations

from tests.conftest import DEMO_TODAY
from tests.web.test_servicing_api import approved, post  # noqa: F401


def test_the_exporter_api_view_carries_no_bank_reference_or_officer(api, approved, clock):  # noqa: F811
    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="BOC-PAY-0001",
                officer="wang").status_code == 200
    clock.advance(days=5)
    day = clock().date().isoformat()
    assert post(api, approved, "repayments", amount="1000.00", value_date=day,
                reference="BOC-REC-7", officer="li").status_code == 200
    mine = api.get(approved).get_data(as_text=True)  # as the exporter reads it
    for internal in ("BOC-PAY-0001", "BOC-REC-7", '"wang"', '"li"'):
        assert internal not in mine, internal
