"""POST /api/v1/deals authenticates from the process's token cache, and the create script
checks the token's record in the same atomic step: a token revoked or re-issued after it
was cached never gets a deal, nor any answer about its request but 401."""

from __future__ import annotations

import json

import pytest

from tests.web.conftest import DONGFANG, HAIXIN, TOKENS, deal_body, dongfang_body, error_of
from workflow import keys, tokens
from workflow.ops import Ops
from workflow.store import DealStore, ExpectationFailed
from workflow.tokens import Principal, token_digest

HAIXIN_TOKEN_KEY = keys.token(token_digest(TOKENS["haixin"]))


@pytest.fixture
def cached(api):
    """Haixin's token, used once, so this process has it cached."""
    assert api.submit(deal_body("INV-HX-1001")).status_code == 202
    return api


def deals_of(fake_redis, uscc: str) -> int:
    return fake_redis.zcard(keys.by_exporter(uscc))


def revoke(fake_redis) -> None:
    tokens.revoke_digest(fake_redis, token_digest(TOKENS["haixin"]))


def test_a_token_revoked_after_it_was_cached_gets_401_and_no_deal(cached, fake_redis):
    revoke(fake_redis)
    rv = cached.submit(deal_body("INV-HX-1002"))
    error_of(rv, 401, "UNAUTHENTICATED")
    assert deals_of(fake_redis, HAIXIN) == 1
    assert not fake_redis.exists(keys.receivable(HAIXIN, "DE-0001", "INV-HX-1002"))
    # ... and it stays refused (forgotten by the cache, read again each time).
    error_of(cached.submit(deal_body("INV-HX-1003")), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "body",
    [
        {},  # 422: fields missing
        deal_body("INV-HX-1001"),  # 409: the invoice is in a live deal already
        dongfang_body(),  # 403: another exporter's USCC
    ],
    ids=["invalid", "duplicate", "other-exporter"],
)
def test_a_revoked_cached_token_learns_nothing_about_its_request(cached, fake_redis, body):
    revoke(fake_redis)
    error_of(cached.submit(body), 401, "UNAUTHENTICATED")


def test_a_revoked_cached_token_cannot_replay_an_idempotent_submission(cached, fake_redis):
    first = cached.submit(deal_body("INV-HX-1002"), key="k-1")
    assert first.status_code == 202
    revoke(fake_redis)
    error_of(cached.submit(deal_body("INV-HX-1002"), key="k-1"), 401, "UNAUTHENTICATED")


def test_a_token_reissued_to_another_exporter_is_read_again(cached, fake_redis):
    # The same token now speaks for Dongfang (a reference file that maps it elsewhere).
    fake_redis.set(HAIXIN_TOKEN_KEY, json.dumps({"role": "exporter", "subject": DONGFANG}))
    rv = cached.submit(dongfang_body())
    assert rv.status_code == 202, rv.get_json()
    assert rv.get_json()["exporter_uscc"] == DONGFANG
    assert deals_of(fake_redis, HAIXIN) == 1
    error_of(cached.submit(deal_body("INV-HX-1004")), 403, "FORBIDDEN")
    assert deals_of(fake_redis, HAIXIN) == 1


def test_a_cached_token_is_not_read_again(api, monkeypatch):
    reads = []
    real = tokens._read
    monkeypatch.setattr(tokens, "_read", lambda r, key: reads.append(key) or real(r, key))
    for n in range(3):
        assert api.submit(deal_body(f"INV-HX-10{n + 1:02d}")).status_code == 202
    assert reads == [HAIXIN_TOKEN_KEY]
    # Reads elsewhere in the API still look the token up each time.
    assert api.list().status_code == 200
    assert api.list().status_code == 200
    assert len(reads) == 3


def test_an_unknown_token_is_never_cached(api, app, fake_redis):
    rv = api.client.post("/api/v1/deals", json=deal_body(),
                         headers={"Authorization": "Bearer not-a-known-token-000"})
    error_of(rv, 401, "UNAUTHENTICATED")
    assert app.extensions["xinbao"].reference.principals._seen == {}


# --- the store's expect op --------------------------------------------------------------------


def test_expect_refuses_unless_the_key_holds_the_value_and_writes_nothing(any_redis):
    fake_redis = any_redis  # fakeredis's Lua, then a real Redis's
    store = DealStore(fake_redis)
    fake_redis.set("guard", "yes")

    def create(deal_id: str, value: str):
        ops = Ops().expect("guard", value).zadd("index", 1, deal_id)
        return store.create(deal_id, {"x": "1"}, actor="test", ops=ops)

    with pytest.raises(ExpectationFailed) as refused:
        create("d1", "no")
    assert refused.value.key == "guard"
    assert not fake_redis.exists(keys.deal("d1"), keys.events("d1"), "index")
    fake_redis.delete("guard")
    with pytest.raises(ExpectationFailed):
        create("d1", "yes")
    fake_redis.set("guard", "yes")
    assert create("d1", "yes").version == 1
    assert fake_redis.zscore("index", "d1") == 1


def test_principal_cache_gives_the_guard_it_was_read_from(fake_redis):
    tokens.add_token(fake_redis, "a-token-of-sixteen-chars", Principal("bank", "BOC-NB"))
    cache = tokens.PrincipalCache(fake_redis)
    principal, guard = cache.principal("a-token-of-sixteen-chars")
    assert principal == Principal("bank", "BOC-NB")
    assert guard == (keys.token(token_digest("a-token-of-sixteen-chars")),
                     fake_redis.get(guard[0]))
    assert cache.principal("bad token!") == (None, None)


# --- the second run, after the cached record was refused ----------------------------------------


def test_the_run_after_a_refused_guard_is_guarded_too(cached, app, fake_redis, monkeypatch):
    """The record changes while the token stays valid (a reference load that writes it in
    another JSON form, or a re-issue): the cached guard is refused and the view runs again
    on a fresh read. A revocation that commits after that read and before the second run's
    write must still refuse the write: the second run is guarded by the record it read."""
    fake_redis.set(HAIXIN_TOKEN_KEY, json.dumps({"subject": HAIXIN, "role": "exporter"}))
    reference = app.extensions["xinbao"].reference
    real_read, real_lookup = tokens._read, reference.principal

    def read_then_revoked(redis, key):
        raw = real_read(redis, key)
        if raw is not None:
            revoke(fake_redis)  # commits between the fresh read and the second run's write
        return raw

    def lookup_then_revoked(token):
        principal = real_lookup(token)
        if principal is not None and fake_redis.exists(HAIXIN_TOKEN_KEY):
            revoke(fake_redis)
        return principal

    monkeypatch.setattr(tokens, "_read", read_then_revoked)
    monkeypatch.setattr(reference, "principal", lookup_then_revoked)
    rv = cached.submit(deal_body("INV-HX-1002"))
    assert not fake_redis.exists(keys.receivable(HAIXIN, "DE-0001", "INV-HX-1002"))
    assert deals_of(fake_redis, HAIXIN) == 1
    error_of(rv, 401, "UNAUTHENTICATED")


def test_a_record_changing_under_every_run_gets_503_and_no_deal(cached, fake_redis, monkeypatch):
    forms = [json.dumps({"subject": HAIXIN, "role": "exporter"}),
             json.dumps({"role": "exporter", "subject": HAIXIN})]
    real_read = tokens._read

    def read_then_rewritten(redis, key):
        raw = real_read(redis, key)
        fake_redis.set(key, forms[0] if raw == forms[1] else forms[1])
        return raw

    fake_redis.set(HAIXIN_TOKEN_KEY, forms[0])
    monkeypatch.setattr(tokens, "_read", read_then_rewritten)
    error_of(cached.submit(deal_body("INV-HX-1002")), 503, "SERVICE_UNAVAILABLE")
    assert deals_of(fake_redis, HAIXIN) == 1


def test_a_revoked_token_gets_401_though_a_stale_record_keeps_coming_back(
        cached, app, fake_redis, monkeypatch):
    # Another thread that read the record before the revocation caches it again after each
    # forget: every run is refused by the guard, and the answer is still 401, not 503.
    principals = app.extensions["xinbao"].reference.principals
    monkeypatch.setattr(principals, "forget", lambda key: None)
    revoke(fake_redis)
    error_of(cached.submit(deal_body("INV-HX-1002")), 401, "UNAUTHENTICATED")
    assert deals_of(fake_redis, HAIXIN) == 1


def test_a_revoked_cached_bank_token_gets_401_not_403(api, fake_redis):
    # A bank token that once posted a deal (403) is in the cache; revoked, it is no token.
    error_of(api.submit(deal_body("INV-HX-1002"), who="boc"), 403, "FORBIDDEN")
    tokens.revoke_digest(fake_redis, token_digest(TOKENS["boc"]))
    error_of(api.submit(deal_body("INV-HX-1002"), who="boc"), 401, "UNAUTHENTICATED")
