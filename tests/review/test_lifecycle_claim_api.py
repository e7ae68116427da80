"""Review: the claim endpoint when the broker is down, and a second, different claim."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_TODAY
from tests.web.conftest import error_of
from tests.web.test_servicing_api import approved, post  # noqa: F401


@pytest.fixture
def noticed(api, approved, clock):  # noqa: F811
    from tests.workflow.test_servicing import DUE

    assert post(api, approved, "disbursement", amount="80000.00",
                value_date=DEMO_TODAY.isoformat(), reference="P-1").status_code == 200
    clock.advance(days=(DUE - DEMO_TODAY).days + 10)
    api.client.application.extensions["xinbao"].sweep_arrears()
    assert post(api, approved, "notice").status_code == 200
    return approved


def test_a_claim_committed_while_the_broker_is_down_is_not_a_500(api, noticed, monkeypatch):
    # Every other endpoint that publishes after a commit (submit, decide) swallows a broker
    # failure: the stranded-deal sweep re-dispatches CLAIM_FILED. /claim calls .delay raw.
    from tasks.pipeline import settle_claim
    from tests.web.conftest import auth

    def broker_down(*_a, **_k):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(settle_claim, "delay", broker_down)
    rv = api.client.post(f"/api/v1/deals/{noticed}/claim",
                         json={"loss_amount": "100000.00", "documents": ["invoice"]},
                         headers=auth("boc"))
    assert rv.status_code == 202, rv.status_code
    assert api.get(noticed, "boc").get_json()["state"] == "claim_filed"


def test_a_second_claim_with_another_loss_is_refused_not_silently_the_first(api, noticed,
                                                                             monkeypatch):
    from tasks.pipeline import settle_claim

    monkeypatch.setattr(settle_claim, "delay", lambda *_a, **_k: None)  # insurer still deciding
    rv = post(api, noticed, "claim", loss_amount="50000.00", documents=["invoice"])
    assert rv.status_code == 202
    # Disbursements and repayments answer 409 for the same reference with another amount; a
    # claim for another loss gets a 2xx that reports nothing was recorded only by its body.
    error_of(post(api, noticed, "claim", loss_amount="100000.00", documents=["invoice"]), 409)
