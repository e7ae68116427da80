"""The web tests' fixtures, for the review's tests of the defects found."""

from __future__ import annotations

import pytest

from tests.web.conftest import api, app, client, clock, deal_body, invoice  # noqa: F401
from tests.web.test_desk import users_clock  # noqa: F401


@pytest.fixture
def large(api) -> str:  # noqa: F811
    """USD 320,000 pending at BOC-NB, whose approvals from 150,000 need a checker."""
    deal = api.create(deal_body(invoices=[invoice(amount="400000.00")],
                                requested_amount="320000.00"))
    deal = api.get(deal["id"], "boc").get_json()
    assert deal["state"] == "pending_bank", deal
    return deal["id"]
