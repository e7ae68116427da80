"""Review 11: the README tells operators to remove a leftover reference record by hand
(``DEL xb:ref:...``); workers cache reference data per version, so that removal alone is not
seen until the next load. The documented procedure must also drop the version."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import make_application
from workflow import keys
from workflow.states import State

README = Path(__file__).resolve().parents[2] / "README.md"


def _hand_removal_sentence() -> str:
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(r"stays until removed by hand.*?BUYER_MISMATCH", text)
    assert found, "the README no longer documents a removal by hand"
    return found.group(0)


def test_the_documented_hand_removal_also_drops_the_reference_version():
    assert "xb:ref:version" in _hand_removal_sentence()


def test_a_hand_removal_with_the_version_dropped_is_seen_by_the_next_verification(
    real_redis, make_workflow
):
    wf = make_workflow(real_redis)
    first = wf.verify(wf.submit(make_application(number="INV-HX-1001")).deal.id)
    assert first.state == State.PENDING_BANK  # the cache now holds this buyer's limit
    app = first.application
    for lim in wf.reference.limits_for(app.policy_no, app.buyer.code):
        real_redis.delete(keys.limit(lim.limit_id))  # the leftover record, removed by hand
    real_redis.delete(keys.reference_version())  # ... and the version, as the README says
    second = wf.verify(wf.submit(make_application(number="INV-HX-1002")).deal.id)
    assert second.state == State.REJECTED
    assert "LIMIT_NOT_FOUND" in second.get("reasons")
