"""Review of issue 10: with more than 100 events waiting, a failed event was overtaken.

The README and workflow/webhook_delivery.py promise: "a failed event is retried before the
later ones for its first 5 tries". The delivery task looked for the next event only among the
100 earliest *due* (CLAIM_WINDOW): the failed one, due again after its backoff, is due later
than the backlog queued before it, so behind 100 or more waiting events it fell out of that
window and the later events went out first: exactly the short outage with a backlog that the
order is meant to survive.
"""

from __future__ import annotations

from tests.workflow.test_webhooks import CONFIG, Clock, Receiver, feed, hooks, run  # noqa: F401
from workflow.webhook_delivery import PostResult

BACKLOG = 150  # more than one claim window (100)


def test_a_failed_event_is_retried_first_behind_a_large_backlog(hooks):  # noqa: F811
    client, a, _ = hooks
    feed(client, "A", "DA", BACKLOG)
    clock = Clock()
    receiver = Receiver({a.url: [PostResult(503, "HTTP 503")]})
    run(client, receiver, clock)
    assert [e["event_id"] for e in receiver.bodies(a.url)] == ["DA:0"]  # failed, paused
    clock.now += CONFIG.backoff_seconds  # past the pause (at most the full backoff)
    run(client, receiver, clock)
    ids = [e["event_id"] for e in receiver.bodies(a.url)]
    assert ids[:3] == ["DA:0", "DA:0", "DA:1"]
    assert ids[1:] == [f"DA:{i}" for i in range(BACKLOG)]
