"""Bank webhooks: signatures, URL rules, registration, and delivery queues (no HTTP here)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import pytest

from workflow import keys, webhooks
from workflow.settings import SettingsError, load_settings
from workflow.webhook_delivery import (
    ORDER_KEPT_TRIES,
    Deliveries,
    DeliveryConfig,
    PostResult,
    backoff,
)
from workflow.webhook_signature import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify_signature,
)

SECRET = "whsec_test-secret-0123456789"
NOW = 1_800_000_000.0
BODY = b'{"event_id":"D1:0","type":"submitted"}'


# --- signatures ------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1800000000", BODY) == expected
    headers = signature_headers(SECRET, "D1:0", BODY, NOW)
    assert headers[EVENT_ID_HEADER] == "D1:0"
    assert headers[TIMESTAMP_HEADER] == "1800000000"
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"


def _verify(body=BODY, timestamp="1800000000", header=None, secret=SECRET, now=NOW, **kw):
    header = header if header is not None else f"v1={sign(SECRET, '1800000000', BODY)}"
    return verify_signature(secret, timestamp, body, header, now=now, **kw)


def test_a_good_signature_verifies_within_the_tolerance():
    assert _verify()
    assert _verify(now=NOW + 300) and _verify(now=NOW - 300)
    assert _verify(body=BODY.decode())  # text or bytes alike


@pytest.mark.parametrize(
    "change",
    [
        {"body": BODY.replace(b"submitted", b"approved")},  # tampered body
        {"body": BODY + b" "},
        {"timestamp": "1800000001"},  # the signed timestamp changed
        {"now": NOW + 301},  # an old request replayed
        {"now": NOW - 301},  # from the future
        {"secret": "whsec_another-secret-000000"},
        {"secret": ""},
        {"header": ""},
        {"header": "v0=" + sign(SECRET, "1800000000", BODY)},  # unknown scheme
        {"header": sign(SECRET, "1800000000", BODY)},  # no scheme
        {"header": "v1=" + "é" * 64},  # latin-1 junk from a header
        {"header": "v1=\x00\x01"},
        {"timestamp": "nan"},
        {"timestamp": "1.8e9"},
        {"timestamp": "١٨٠٠٠٠٠٠٠٠"},  # digits, but not ASCII ones
        {"timestamp": None},
        {"timestamp": ""},
    ],
    ids=repr,
)
def test_anything_changed_fails_verification(change):
    assert not _verify(**change)


def test_one_good_signature_among_several_verifies():
    good = sign(SECRET, "1800000000", BODY)
    assert _verify(header=f"v1={'0' * 64}, v1={good}")


# --- URLs and secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://bank.example/hooks",
        "https://bank.example:8443/xinbao/hooks?src=xinbao",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:8080/hook",
    ],
)
def test_urls_accepted_outside_production(url):
    assert webhooks.url_problem(url, production=False) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://bank.example/hooks", "http:// only for 127.0.0.1"),
        ("ftp://bank.example/hooks", "https://"),
        ("bank.example/hooks", "https://"),
        ("https:///nohost", "https://"),
        ("https://user:pw@bank.example/h", "no user or password"),
        ("https://bank.example/h#frag", "fragment"),
        ("https://bank.example:99999/h", "not a valid URL"),
        ("https://bank.example/a b", "spaces"),
        ("https://bänk.example/h", "non-ASCII"),
        ("https://bank.example/\x00", "control"),
        ("", "https://"),
        ("https://bank.example/" + "a" * 2100, "2048"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url, words):
    problem = webhooks.url_problem(url, production=False)
    assert problem is not None and words in problem


def test_production_refuses_plain_http_even_locally():
    assert "production" in webhooks.url_problem("http://127.0.0.1/h", production=True)
    assert webhooks.url_problem("https://bank.example/h", production=True) is None


def _bank(client, *bank_ids):
    for bank_id in bank_ids:
        client.hset(keys.bank(bank_id), "name", bank_id)


def test_add_list_remove(fake_redis):
    _bank(fake_redis, "BOC-NB")
    hook = webhooks.add_webhook(fake_redis, "BOC-NB", "https://boc.example/h", now=NOW)
    assert hook.secret.startswith("whsec_") and len(hook.secret) > 40
    given = webhooks.add_webhook(
        fake_redis, "BOC-NB", "https://boc.example/2", now=NOW + 1, secret="s" * 16
    )
    assert given.secret == "s" * 16
    assert [h.webhook_id for h in webhooks.list_webhooks(fake_redis)] == [
        hook.webhook_id,
        given.webhook_id,
    ]
    rows = webhooks.webhook_stats(fake_redis)
    assert all("secret" not in row and hook.secret not in json.dumps(row) for row in rows)
    assert rows[0]["delivered"] == rows[0]["dead"] == rows[0]["pending"] == 0
    webhooks.remove_webhook(fake_redis, hook.webhook_id)
    assert [h.webhook_id for h in webhooks.list_webhooks(fake_redis)] == [given.webhook_id]
    assert not fake_redis.exists(keys.webhook(hook.webhook_id))
    with pytest.raises(webhooks.WebhookError, match="no webhook"):
        webhooks.remove_webhook(fake_redis, hook.webhook_id)


@pytest.mark.parametrize(
    ("bank", "url", "secret", "words"),
    [
        ("NOPE", "https://x.example/h", None, "bank: no bank NOPE"),
        ("BOC NB", "https://x.example/h", None, "bank: use A-Z"),
        ("BOC-NB", "http://x.example/h", None, "url: http:// only"),
        ("BOC-NB", "https://x.example/h", "short", "secret: at least 16"),
        ("BOC-NB", "https://x.example/h", "with space 0123456", "secret: printable ASCII"),
        ("BOC-NB", "https://x.example/h", "密钥" * 10, "secret: printable ASCII"),
    ],
)
def test_refused_registration_writes_nothing(fake_redis, bank, url, secret, words):
    _bank(fake_redis, "BOC-NB")
    with pytest.raises(webhooks.WebhookError, match=words):
        webhooks.add_webhook(fake_redis, bank, url, now=NOW, secret=secret)
    assert webhooks.list_webhooks(fake_redis) == []


# --- delivery --------------------------------------------------------------------------------


class Receiver:
    """A fake endpoint per URL: records each request; answers from a script, then 200."""

    def __init__(self, script=None):
        self.requests: list[tuple[str, dict, bytes]] = []
        self.script = dict(script or {})

    def __call__(self, url, headers, body, config):
        self.requests.append((url, headers, body))
        answers = self.script.get(url) or []
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return PostResult(200)

    def bodies(self, url):
        return [json.loads(b) for u, _, b in self.requests if u == url]


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


CONFIG = DeliveryConfig(retry_seconds=3600, backoff_seconds=10, backoff_max_seconds=600)


@pytest.fixture
def hooks(any_redis):
    """Banks A and B, a webhook each, and a way to run dispatch and delivery by hand."""
    _bank(any_redis, "A", "B")
    a = webhooks.add_webhook(any_redis, "A", "https://a.example/h", now=NOW)
    b = webhooks.add_webhook(any_redis, "B", "https://b.example/h", now=NOW)
    return any_redis, a, b


def run(client, receiver, clock, rounds=1, config=CONFIG):
    """Dispatch passes, each running the delivery tasks it started right away."""
    jobs = Deliveries(client, config, post=receiver, clock=clock)
    started = []
    for _ in range(rounds):
        tasks = []
        jobs.dispatch(lambda hook_id, token, tasks=tasks: tasks.append((hook_id, token)))
        started += tasks
        for hook_id, token in tasks:
            jobs.deliver(hook_id, token)
    return started


def append_bank_feed(client, bank_id: str, deal_id: str, index: int, event: dict) -> str:
    """An entry on the bank's feed as the transitions write it (workflow/feed.py)."""
    fields = {"deal": deal_id, "event": json.dumps({"v": index, **event})}
    return client.xadd(keys.bank_feed(bank_id), fields)


def feed(client, bank, deal, n, start=0):
    for i in range(start, start + n):
        append_bank_feed(client, bank, deal, i, {"type": f"step{i}", "at": "2027-01-01", "x": "é"})


def test_each_bank_gets_its_own_events_signed_with_its_own_secret(hooks):
    client, a, b = hooks
    feed(client, "A", "DA", 3)
    feed(client, "B", "DB", 2)
    receiver = Receiver()
    run(client, receiver, Clock())
    got_a, got_b = receiver.bodies(a.url), receiver.bodies(b.url)
    assert [e["event_id"] for e in got_a] == ["DA:0", "DA:1", "DA:2"]
    assert [e["event_id"] for e in got_b] == ["DB:0", "DB:1"]
    assert {e["bank_id"] for e in got_a} == {"A"} and {e["deal_id"] for e in got_a} == {"DA"}
    assert {e["bank_id"] for e in got_b} == {"B"} and {e["deal_id"] for e in got_b} == {"DB"}
    assert got_a[0]["type"] == "step0" and got_a[0]["x"] == "é" and got_a[0]["cursor"]
    for url, headers, body in receiver.requests:
        mine, other = (a, b) if url == a.url else (b, a)
        ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert verify_signature(mine.secret, ts, body, sig, now=NOW)
        assert not verify_signature(other.secret, ts, body, sig, now=NOW)
        assert headers[EVENT_ID_HEADER] == json.loads(body)["event_id"]
    stats = {r["bank_id"]: r for r in webhooks.webhook_stats(client)}
    assert stats["A"]["delivered"] == 3 and stats["B"]["delivered"] == 2
    assert stats["A"]["pending"] == 0


def test_a_new_webhook_starts_at_the_end_of_the_feed_unless_from_start(any_redis):
    _bank(any_redis, "A")
    feed(any_redis, "A", "OLD", 2)
    now_hook = webhooks.add_webhook(any_redis, "A", "https://a.example/now", now=NOW)
    all_hook = webhooks.add_webhook(
        any_redis, "A", "https://a.example/all", now=NOW, from_start=True
    )
    feed(any_redis, "A", "NEW", 1)
    receiver = Receiver()
    run(any_redis, receiver, Clock())
    assert [e["event_id"] for e in receiver.bodies(now_hook.url)] == ["NEW:0"]
    assert [e["event_id"] for e in receiver.bodies(all_hook.url)] == ["OLD:0", "OLD:1", "NEW:0"]


def test_failures_are_retried_with_backoff_in_order_until_the_endpoint_recovers(hooks):
    client, a, b = hooks
    feed(client, "A", "DA", 3)
    feed(client, "B", "DB", 2)
    clock = Clock()
    receiver = Receiver({a.url: [PostResult(500, "HTTP 500"), PostResult(None, "timeout")]})
    run(client, receiver, clock)
    # A failed at once and is paused; B, beside it, got everything.
    assert len(receiver.bodies(a.url)) == 1 and len(receiver.bodies(b.url)) == 2
    run(client, receiver, clock, rounds=3)  # still paused: no new attempt at A
    assert len(receiver.bodies(a.url)) == 1
    clock.now += CONFIG.backoff_seconds  # past the first pause (at most the full backoff)
    run(client, receiver, clock)
    assert len(receiver.bodies(a.url)) == 2  # the timeout: paused again, longer
    clock.now += 2 * CONFIG.backoff_seconds  # past the second pause (twice as long at most)
    run(client, receiver, clock)
    ids = [e["event_id"] for e in receiver.bodies(a.url)]
    # The first event was tried three times, first; each event delivered, in feed order.
    assert ids == ["DA:0", "DA:0", "DA:0", "DA:1", "DA:2"]
    history = webhooks.history(client, a.webhook_id)
    assert [h["outcome"] for h in reversed(history)] == [
        "retry",
        "retry",
        "delivered",
        "delivered",
        "delivered",
    ]
    assert [h["status"] for h in reversed(history)][:2] == [500, None]
    assert history[-2]["error"] == "timeout"
    assert [h["event_id"] for h in webhooks.history(client, a.webhook_id, failed=True)] == [
        "DA:0",
        "DA:0",
    ]
    row = next(r for r in webhooks.webhook_stats(client) if r["bank_id"] == "A")
    assert (row["delivered"], row["failed_attempts"], row["dead"], row["pending"]) == (3, 2, 0, 0)
    assert row["consecutive_failures"] == 0


def test_an_event_undelivered_for_the_retry_time_is_dead(hooks):
    client, a, _ = hooks
    feed(client, "A", "DA", 2)
    clock = Clock()
    receiver = Receiver({a.url: [PostResult(503, "HTTP 503")] * 1000})
    for _ in range(200):
        run(client, receiver, clock)
        clock.now += CONFIG.backoff_max_seconds / 4
        if clock.now > NOW + 2 * CONFIG.retry_seconds:
            break
    row = next(r for r in webhooks.webhook_stats(client) if r["bank_id"] == "A")
    assert row["dead"] == 2 and row["pending"] == 0 and row["delivered"] == 0
    dead = [h for h in webhooks.history(client, a.webhook_id, limit=500) if h["outcome"] == "dead"]
    assert sorted(h["event_id"] for h in dead) == ["DA:0", "DA:1"]
    # Never tried after it was given up, and not before the retry time was over.
    last = max(datetime.fromisoformat(h["at"]).timestamp() for h in dead)
    assert last >= NOW + CONFIG.retry_seconds


def test_backoff_doubles_up_to_the_longest_wait_with_jitter():
    config = DeliveryConfig(backoff_seconds=5, backoff_max_seconds=60)
    assert [backoff(n, config, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [
        5,
        10,
        20,
        40,
        60,
        60,
    ]
    assert backoff(3, config, rand=lambda: 0.0) == 10


def test_one_poster_per_webhook_and_a_killed_one_is_replaced(hooks):
    client, a, _ = hooks
    feed(client, "A", "DA", 2)
    clock = Clock()
    jobs = Deliveries(client, CONFIG, post=Receiver(), clock=clock)
    started = []
    jobs.dispatch(lambda hook_id, token: started.append((hook_id, token)))
    mine = [t for h, t in started if h == a.webhook_id]
    assert len(mine) == 1
    # While its task holds the lease, no second task is started for the webhook.
    again = []
    jobs.dispatch(lambda hook_id, token: again.append(hook_id))
    assert a.webhook_id not in again
    # A task whose token is not the lease's posts nothing.
    assert jobs.deliver(a.webhook_id, "not-the-token") == 0

    # The task dies mid-post (SIGKILL): nothing recorded, and its lease lapses.
    def killed(*_):
        raise SystemExit("killed")

    dying = Deliveries(client, CONFIG, post=killed, clock=clock)
    with pytest.raises(SystemExit):
        dying.deliver(a.webhook_id, mine[0])
    client.delete(keys.webhook_lease(a.webhook_id))  # as when the lease expires
    receiver = Receiver()
    run(client, receiver, clock)
    assert [e["event_id"] for e in receiver.bodies(a.url)] == ["DA:0", "DA:1"]


def test_a_stale_cursor_queues_nothing_twice(hooks):
    client, a, _ = hooks
    feed(client, "A", "DA", 2)
    jobs = Deliveries(client, CONFIG, post=Receiver(), clock=Clock())
    hook_then = webhooks.get_webhook(client, a.webhook_id)
    assert jobs.pull_feed(hook_then) == 2
    assert jobs.pull_feed(hook_then) == 0  # a second dispatcher that read the same cursor
    assert client.zcard(keys.webhook_order(a.webhook_id)) == 2


def test_a_removed_webhook_gets_nothing_more(hooks):
    client, a, b = hooks
    feed(client, "A", "DA", 2)
    clock = Clock()
    jobs = Deliveries(client, CONFIG, post=Receiver(), clock=clock)
    started = []
    jobs.dispatch(lambda hook_id, token: started.append((hook_id, token)))
    webhooks.remove_webhook(client, a.webhook_id)
    receiver = Receiver()
    jobs.post = receiver
    for hook_id, token in started:
        jobs.deliver(hook_id, token)
    assert receiver.bodies(a.url) == []
    assert not [k for k in client.keys(f"*{a.webhook_id}*")]


def test_an_event_refused_for_good_stops_holding_back_the_later_ones(hooks):
    client, a, _ = hooks
    feed(client, "A", "DA", 3)
    clock = Clock()
    refused = {"n": 0}

    def receiver(url, headers, body, config):
        if json.loads(body)["event_id"] == "DA:0":
            refused["n"] += 1
            return PostResult(422, "HTTP 422")
        delivered.append(json.loads(body)["event_id"])
        return PostResult(200)

    delivered: list[str] = []
    config = DeliveryConfig(retry_seconds=24 * 3600, backoff_seconds=10, backoff_max_seconds=600)
    for _ in range(ORDER_KEPT_TRIES - 1):
        run(client, receiver, clock, config=config)
        clock.now += config.backoff_max_seconds
    # Its first tries kept the order: nothing after it went out.
    assert refused["n"] == ORDER_KEPT_TRIES - 1 and delivered == []
    for _ in range(3):
        run(client, receiver, clock, config=config)
        clock.now += config.backoff_max_seconds
    assert delivered == ["DA:1", "DA:2"]
    assert client.zrange(keys.webhook_order(a.webhook_id), 0, -1) == ["DA:0"]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_webhook_waits_must_be_positive(value):
    with pytest.raises(SettingsError, match="XINBAO_WEBHOOK_RETRY_HOURS"):
        load_settings({"XINBAO_WEBHOOK_RETRY_HOURS": value})


def test_webhook_settings_reach_the_delivery_config():
    settings = load_settings(
        {"XINBAO_WEBHOOK_RETRY_HOURS": "2", "XINBAO_WEBHOOK_TIMEOUT_SECONDS": "4"}
    )
    config = DeliveryConfig.from_settings(settings)
    assert config.retry_seconds == 7200 and config.timeout_seconds == 4
    assert config.connect_timeout_seconds == 3 and config.backoff_seconds == 5
