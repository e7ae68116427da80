"""Review of the exporter's deal page: what it says while a deal is re-routed."""

from __future__ import annotations

from tests.web.conftest import deal_body
from tests.web.test_desk import page
from tests.web.test_portal import exporter
from workflow.pipeline import Decision


def test_after_a_bank_passed_the_page_does_not_say_no_bank_was_offered_it(app, api, users_clock):
    """Between a bank passing (decline or missed deadline) and the next offer, the deal is in
    routing; the page then says "No bank has been offered this deal yet." while its own
    timeline, just below, shows it was offered to a bank that passed. The words are false."""
    deal = api.create(deal_body("INV-HX-1001"))
    flow = app.extensions["xinbao"]
    flow.decide(deal["id"], "BOC-NB", Decision(approve=False, officer="Li Wei", reason="no"))
    assert flow.store.get(deal["id"]).state == "routing"  # the router has not run yet
    html = page(exporter(app, "haixin"), f"/exporter/deals/{deal['id']}")
    assert "Offered to a bank" in html and "A bank passed" in html
    assert "No bank has been offered this deal yet." not in html
