"""Found in review: the exporter's event log (GET /deals/<id>/events) carries the bank's
internal maker-checker step in each event's ``set``, which the deal view hides."""

from __future__ import annotations

import json


def _exporter_log(api, deal_id: str) -> str:
    rv = api.events(deal_id)  # Haixin's own deal
    assert rv.status_code == 200
    return json.dumps(rv.get_json())


def test_exporter_events_carry_no_first_approval(api, large):
    api.decide(large, "boc", decision="approve", officer="boc-officer")
    assert api.get(large).get_json()["first_approval"] is None  # the deal view hides it
    events = json.loads(_exporter_log(api, large))["events"]
    # The maker's name, the amount and the ref are in the event's ``set``.
    assert [e["set"]["first_approval"] for e in events
            if "first_approval" in (e.get("set") or {})] == []


def test_exporter_events_carry_no_send_back_note(api, large):
    api.decide(large, "boc", decision="approve", officer="boc-officer")
    api.decide(large, "boc", decision="send_back", officer="boc-checker",
               reason="internal: exporter's payment record looks shaky")
    log = _exporter_log(api, large)
    assert "looks shaky" not in log  # the bank's internal note to its own maker
    assert "returned_approval" not in log
