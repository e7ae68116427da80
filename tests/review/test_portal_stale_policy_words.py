"""Review of the application form's errors when the posted policy is not one offered."""

from __future__ import annotations

from tests.web.test_portal import Form, exporter, exporter_deals, field_error, line


def test_a_policy_not_offered_does_not_claim_the_buyer_was_left_empty(app, users_clock):
    """The exporter chose a buyer, but the posted policy is not among its choices (gone in a
    reference reload since the page was shown, or the POST was edited). The policy gets its
    own words; beside the buyer, which was chosen, the page also says "Missing data for
    required field." -- the schema's complaint about the buyer the view left out of the body
    it built, shown to the exporter as if the buyer select had been left empty."""
    client = exporter(app, "haixin")
    rv = Form(client).post([line("INV-HX-1001")], policy_no="SIN-2026-0009", buyer="DE-0001")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 422
    assert "Choose one of your policies." in field_error(html, "policy_no")
    assert "Missing data for required field." not in field_error(html, "buyer")
    assert exporter_deals(app) == []
