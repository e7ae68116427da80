"""A bank whose offer ended learns nothing later from any answer, reads and refusals alike.

Whatever happened after BOC declined (another bank holds or approved the deal, the approval
was cancelled, the exporter withdrew, nobody took it), every answer BOC can get is the same.
"""

from __future__ import annotations

from tests.web.conftest import deal_body

LATER = ["pending_elsewhere", "approved_elsewhere", "approval_cancelled", "withdrawn",
         "unplaced"]


def _boc_declines_then(api, number: str, later: str) -> str:
    deal = api.create(deal_body(number))
    assert api.decide(deal["id"], "boc", decision="decline", reason="no appetite"
                      ).status_code == 200
    assert api.get(deal["id"]).get_json()["offered_banks"][-1] == "ICBC-NB"
    if later in ("approved_elsewhere", "approval_cancelled"):
        assert api.decide(deal["id"], "icbc", decision="approve").status_code == 200
    if later == "approval_cancelled":
        assert api.cancel(deal["id"], "icbc", reason="terms changed").status_code == 200
    if later == "withdrawn":
        assert api.withdraw(deal["id"]).status_code == 200
    if later == "unplaced":
        assert api.decide(deal["id"], "icbc", decision="decline", reason="x").status_code == 200
        assert api.decide(deal["id"], "ccb", decision="decline", reason="x").status_code == 200
    expected_state = {"pending_elsewhere": "pending_bank", "approved_elsewhere": "approved",
                      "approval_cancelled": "cancelled", "withdrawn": "withdrawn",
                      "unplaced": "unplaced"}[later]
    assert api.get(deal["id"]).get_json()["state"] == expected_state
    return deal["id"]


def _answers(api, deal_id: str) -> dict:
    """Everything BOC can get back about the deal, with the deal id itself blanked out."""
    out = {}
    calls = {
        "get": lambda: api.get(deal_id, "boc"),
        "events": lambda: api.events(deal_id, "boc"),
        "cancel": lambda: api.cancel(deal_id, "boc", reason="x"),
        "approve": lambda: api.decide(deal_id, "boc", decision="approve"),
        "decline": lambda: api.decide(deal_id, "boc", decision="decline", reason="x"),
    }
    for name, call in calls.items():
        rv = call()
        body = rv.get_data(as_text=True).replace(deal_id, "<id>")
        out[name] = (rv.status_code, body)
    return out


def test_a_bank_that_declined_learns_nothing_later_from_the_decision_or_cancel_answers(api):
    answers = {}
    for n, later in enumerate(LATER, start=1):
        answers[later] = _answers(api, _boc_declines_then(api, f"INV-HX-10{n:02d}", later))
    # The GET answers hold up: BOC reads the deal as it was when it declined.
    for later in LATER:
        assert answers[later]["get"][0] == 200 and answers[later]["events"][0] == 200
    for name in ("cancel", "approve", "decline"):
        seen = {later: answers[later][name] for later in LATER}
        assert len(set(seen.values())) == 1, (
            f"POST {name} by the bank that declined tells it what happened since: {seen}"
        )
    for later in LATER:
        for name in ("cancel", "approve", "decline"):
            body = answers[later][name][1]
            for word in ("approved,", "cancelled", "withdrawn", "unplaced", "pending_bank"):
                assert f"is {word}" not in body, (later, name, body)


def test_a_bank_whose_deadline_passed_learns_nothing_later_from_the_decision_answer(api):
    flow = api.client.application.extensions["xinbao"]
    deal = api.create()
    api.clock.advance(hours=25)
    assert flow.expire_deadlines() == [deal["id"]]
    # Still in routing (no worker ran): BOC's answer now ...
    before = api.decide(deal["id"], "boc", decision="approve")
    flow.route(deal["id"])
    assert api.get(deal["id"]).get_json()["state"] == "pending_bank"  # now at ICBC
    after = api.decide(deal["id"], "boc", decision="approve")
    assert before.status_code == after.status_code == 409
    assert before.get_json() == after.get_json(), (before.get_json(), after.get_json())
