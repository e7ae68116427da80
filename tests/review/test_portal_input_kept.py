"""Review of the application form: input kept when the choices empty out meanwhile."""

from __future__ import annotations

import json

from tests.web.test_portal import Form, exporter, exporter_deals, line, value_of
from workflow import keys


def test_input_is_kept_when_the_last_limit_ends_while_the_form_is_filled(app, users_clock):
    """The form offers only limits in force *today*. If the exporter's last one ends between
    showing the form and posting it (it expires at midnight, or a reference reload suspends
    it), the POST answers with the "nothing to finance" card and no form at all: every
    invoice line typed is gone, and no error says why the submission failed."""
    client = exporter(app, "haixin")
    form = Form(client)
    redis = app.extensions["redis"]
    lookups = [k for k in redis.smembers(keys.limit_lookups())
               if k.startswith(keys.limits_for("SIN-2026-0001", ""))]
    for lookup in lookups:
        for limit_id in redis.smembers(lookup):
            raw = json.loads(redis.get(keys.limit(limit_id)))
            raw["status"] = "suspended"
            redis.set(keys.limit(limit_id), json.dumps(raw))
    rv = form.post([line("INV-HX-1001"), line("INV-HX-1002", amount="2500.50")])
    html = rv.get_data(as_text=True)
    assert rv.status_code == 422
    assert value_of(html, "invoices-1-amount") == "2500.50"  # what was typed, still there
    assert exporter_deals(app) == []
