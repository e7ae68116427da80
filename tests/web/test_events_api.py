"""GET /api/v1/events: a bank's feed over the API, by cursor, as the deal API shows events."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DEMO_NOW, Clock
from tests.web.conftest import EAGER, Api, auth, deal_body, error_of
from web import create_app
from workflow import keys
from workflow.reference import store_reference

BANKS = ("boc", "icbc", "ccb")
FEED_FIELDS = ("cursor", "event_id", "deal_id")


@pytest.fixture(params=["fake", "real"])
def feed_api(request, demo_reference, settings) -> Api:
    """The API on fakeredis, then on a real Redis (the feed op as Redis runs it)."""
    client = request.getfixturevalue(f"{request.param}_redis")
    store_reference(client, demo_reference)
    app = create_app(settings, redis_client=client, celery=dict(EAGER))
    app.config["TESTING"] = True
    clock = Clock(DEMO_NOW)
    app.extensions["xinbao"].clock = clock
    return Api(app.test_client(), clock)


def feed(api: Api, who: str, **query):
    return api.client.get("/api/v1/events", query_string=query, headers=auth(who))


def whole_feed(api: Api, who: str, limit: int = 2) -> list[dict]:
    """Every event the bank's feed gives, page after page from each answer's ``next``."""
    out, after = [], None
    while True:
        query = {"limit": limit} if after is None else {"limit": limit, "after": after}
        rv = feed(api, who, **query)
        assert rv.status_code == 200, rv.get_json()
        body = rv.get_json()
        if not body["events"]:
            assert body["next"] == after  # nothing new: ask again with the same cursor
            return out
        out += body["events"]
        after = body["next"]
        assert after == body["events"][-1]["cursor"]


def assert_feed_is_the_deal_api(api: Api, deal_ids: list[str]) -> dict[str, list[dict]]:
    feeds = {}
    for who in BANKS:
        feeds[who] = got = whole_feed(api, who)
        assert len({e["event_id"] for e in got}) == len(got)
        for deal_id in deal_ids:
            mine = [
                {k: v for k, v in e.items() if k not in FEED_FIELDS}
                for e in got
                if e["deal_id"] == deal_id
            ]
            rv = api.events(deal_id, who)
            expected = rv.get_json()["events"] if rv.status_code == 200 else []
            assert rv.status_code in (200, 404)
            assert mine == expected, (who, deal_id)
            assert all(
                e["event_id"] == f"{deal_id}:{e['v']}" for e in got if e["deal_id"] == deal_id
            )
    return feeds


def test_the_feed_is_what_the_deal_api_shows_each_bank(feed_api):
    api = feed_api
    declined = api.create(deal_body("INV-HX-1001"))["id"]
    assert api.decide(declined, "boc", decision="decline", reason="no").status_code == 200
    assert api.decide(declined, "icbc", decision="approve").status_code == 200
    expired = api.create(deal_body("INV-HX-1002"))["id"]
    api.clock.advance(hours=25)
    flow = api.client.application.extensions["xinbao"]
    assert flow.expire_deadlines() == [expired]
    flow.route(expired)
    assert api.withdraw(expired).status_code == 200
    feeds = assert_feed_is_the_deal_api(api, [declined, expired])
    assert [e["type"] for e in feeds["boc"] if e["deal_id"] == expired][-1] == "deadline_missed"
    assert [e["type"] for e in feeds["icbc"]][-1] == "withdrawn"
    assert feeds["ccb"] == []
    first = feeds["boc"][0]
    assert set(first) >= {"cursor", "event_id", "deal_id", "type", "v", "at", "by", "to"}
    assert "set" not in first


def test_resuming_from_next_gives_the_rest_and_nothing_twice(feed_api):
    api = feed_api
    deal_id = api.create()["id"]
    everything = feed(api, "boc", limit=1000).get_json()
    assert len(everything["events"]) >= 3
    page = feed(api, "boc", limit=2).get_json()
    rest = feed(api, "boc", after=page["next"]).get_json()
    assert page["events"] + rest["events"] == everything["events"]
    assert rest["next"] == everything["next"]
    # The next event comes after the cursor held.
    assert api.decide(deal_id, "boc", decision="approve").status_code == 200
    later = feed(api, "boc", after=everything["next"]).get_json()
    assert [e["type"] for e in later["events"]] == ["approved"]
    assert feed(api, "boc", after=later["next"]).get_json() == {
        "events": [],
        "next": later["next"],
    }


def test_only_bank_tokens_read_a_feed(api):
    error_of(feed(api, "haixin"), 403, "FORBIDDEN")
    rv = api.client.get("/api/v1/events")
    assert rv.status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"after": "abc"}, "after"),
        ({"after": ""}, "after"),
        ({"after": "1-2-3"}, "after"),
        ({"after": "99999999999999999999999"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "x"}, "limit"),
    ],
)
def test_a_bad_query_is_400_naming_the_parameter(api, query, field):
    body = error_of(feed(api, "boc", **query), 400, "BAD_QUERY")
    assert list(body["fields"]) == [field]


def test_a_cursor_older_than_the_retention_is_410_not_a_silent_gap(api, fake_redis):
    api.create()
    stream = keys.bank_feed("BOC-NB")
    oldest = fake_redis.xrange(stream, count=1)[0][0]
    ms = int(oldest.split("-")[0])
    # As if retention had removed entries up to one just before what is kept.
    fake_redis.set(keys.bank_feed_trimmed("BOC-NB"), f"{ms - 1}-0")
    body = error_of(feed(api, "boc", after=f"{ms - 2}-0"), 410, "CURSOR_EXPIRED")
    assert "after" in body["fields"] and "30 days" in body["message"]
    # The newest removed entry, or anything after it, reads on.
    assert feed(api, "boc", after=f"{ms - 1}-0").status_code == 200
    assert feed(api, "boc").status_code == 200


def test_the_feed_reads_straight_from_the_stream(api, fake_redis):
    """Backed by the bank's stream, not by scanning deals: an entry put there shows."""
    event = {"v": 1, "at": "", "by": "worker", "type": "submitted", "from": None, "to": "x"}
    fake_redis.xadd(keys.bank_feed("CCB-NB"), {"deal": "D1", "event": json.dumps(event)})
    got = feed(api, "ccb").get_json()["events"]
    assert [(e["deal_id"], e["event_id"], e["type"]) for e in got] == [("D1", "D1:1", "submitted")]


def test_a_cursor_ahead_of_the_feed_is_400_not_an_endless_nothing_new(api, fake_redis):
    # A client that sent a cursor this feed never gave out would otherwise get "no events"
    # for ever, and miss every later one.
    deal = api.create(deal_body())
    page = api.client.get("/api/v1/events", headers=auth("boc")).get_json()
    newest = page["next"]
    assert page["events"] and newest
    # Resuming from the newest cursor: nothing new, and that is fine.
    again = api.client.get(f"/api/v1/events?after={newest}", headers=auth("boc"))
    assert again.status_code == 200 and again.get_json() == {"events": [], "next": newest}
    ms = int(newest.split("-")[0])
    for ahead in (f"{ms + 1}-0", "99999999999999-0"):
        rv = api.client.get(f"/api/v1/events?after={ahead}", headers=auth("boc"))
        body = error_of(rv, 400, "BAD_QUERY")
        assert "after" in body["fields"]
    # A bank whose feed is still empty: any cursor but 0-0 is ahead of it.
    assert api.client.get("/api/v1/events?after=0-0", headers=auth("ccb")).status_code == 200
    rv = api.client.get(f"/api/v1/events?after={newest}", headers=auth("ccb"))
    error_of(rv, 400, "BAD_QUERY")
    assert deal["id"]
