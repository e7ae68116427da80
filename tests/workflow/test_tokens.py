"""Token lookup during a Sentinel failover: not found on a replica is "try again"."""

from __future__ import annotations

import fakeredis
import pytest
import redis as redis_py
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.sentinel import SentinelConnectionPool

from tests.support import RedisServer, free_port
from workflow import tokens
from workflow.tokens import lookup


class _ReplicaAnswers:
    """A client that reached a replica still resyncing (empty): GET finds nothing, and the
    pipeline on its connection says so with ROLE."""

    def __init__(self, role: str):
        self.role = role

    def get(self, key):
        return None

    def pipeline(self, transaction=False):
        outer = self

        class Pipe:
            def get(self, key):
                pass

            def execute_command(self, *args):
                pass

            def execute(self, raise_on_error=True):
                return [None, [outer.role, 0]]

        return Pipe()


def test_a_token_not_found_on_a_replica_is_try_again_not_revoked():
    token = "demo-haixin-exporter-token"
    with pytest.raises(RedisConnectionError):
        lookup(_ReplicaAnswers("slave"), token)
    assert lookup(_ReplicaAnswers("master"), token) is None


# --- against real servers ------------------------------------------------------------------

GOOD = "review13-good-token-000000"
UNKNOWN = "review13-never-issued-token"


class _Sentinels:
    """What the sentinels name primary; a test moves it (they catch up after a failover)."""

    def __init__(self, port: int):
        self.port = port

    def discover_master(self, service_name):
        return ("127.0.0.1", self.port)


@pytest.fixture
def primary_and_stale_replica(tmp_path):
    """A primary holding a good token, and an empty server resyncing as a replica (of a
    primary that does not answer: it stays empty, as the restarted old primary is at first)."""
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(
        tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(free_port()))
    ).start()
    client = redis_py.Redis(port=primary.port, decode_responses=True)
    tokens.add_token(client, GOOD, tokens.Principal(tokens.EXPORTER, "91330200MA2AB1C2DJ"))
    yield primary, replica
    primary.stop()
    replica.stop()


@pytest.mark.parametrize("decode", [True, False])
def test_on_a_healthy_primary_unknown_and_revoked_tokens_are_none(
    primary_and_stale_replica, decode
):
    primary, _ = primary_and_stale_replica
    client = redis_py.Redis(port=primary.port, decode_responses=decode)
    assert lookup(client, GOOD) == tokens.Principal(tokens.EXPORTER, "91330200MA2AB1C2DJ")
    assert lookup(client, UNKNOWN) is None
    tokens.revoke_digest(client, tokens.token_digest(GOOD))
    assert lookup(client, GOOD) is None
    assert lookup(client, "bad token\xff with bytes") is None


def test_a_client_not_allowed_role_still_gets_none_for_an_unknown_token(
    primary_and_stale_replica,
):
    primary, _ = primary_and_stale_replica
    admin = redis_py.Redis(port=primary.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-role")
    client = redis_py.Redis(port=primary.port, username="app", password="pw",
                            decode_responses=True)
    assert lookup(client, UNKNOWN) is None
    assert lookup(client, GOOD) is not None


def test_fakeredis_unknown_token_is_none():
    assert lookup(fakeredis.FakeRedis(decode_responses=True), UNKNOWN) is None


def test_after_try_again_a_sentinel_client_reaches_the_primary_the_sentinels_now_name(
    primary_and_stale_replica,
):
    """The 503 says try again: the retry must be able to succeed. A connection that reached a
    replica is dropped, so the next one asks the sentinels again (as redis-py does itself on
    a READONLY reply); kept in the pool, every retry met the same replica."""
    primary, replica = primary_and_stale_replica
    sentinels = _Sentinels(replica.port)  # a sentinel not yet caught up names the old one
    pool = SentinelConnectionPool("xinbao", sentinels, decode_responses=True)
    client = redis_py.Redis(connection_pool=pool)
    for token in (GOOD, UNKNOWN):
        with pytest.raises(RedisConnectionError):
            lookup(client, token)
    sentinels.port = primary.port  # the sentinels have caught up
    assert lookup(client, GOOD) == tokens.Principal(tokens.EXPORTER, "91330200MA2AB1C2DJ")
    assert lookup(client, UNKNOWN) is None
