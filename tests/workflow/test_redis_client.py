"""Sentinel settings and the one Redis client factory (no server needed: clients connect lazily)."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from tasks.celery_app import celery_config
from workflow.redis_client import connect
from workflow.settings import SettingsError, load_settings

SENTINELS = {
    "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3",
    "REDIS_SENTINEL_MASTER": "xb",
    "REDIS_URL": "redis://:secret@ignored:6379/2",
}


def test_sentinels_are_parsed_and_the_broker_follows_them():
    settings = load_settings(SENTINELS)
    assert settings.redis_sentinels == (
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("10.0.0.3", 26379),
    )
    assert settings.broker_url == (
        "sentinel://:secret@10.0.0.1:26379/2;sentinel://:secret@10.0.0.2:26380/2;"
        "sentinel://:secret@10.0.0.3:26379/2"
    )
    options = celery_config(settings)["broker_transport_options"]
    assert options["master_name"] == "xb"
    assert options["visibility_timeout"] == settings.visibility_timeout_seconds


def test_without_sentinels_nothing_changes():
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:6390/1", "REDIS_SENTINELS": ""})
    assert settings.broker_url == "redis://127.0.0.1:6390/1"
    assert "master_name" not in celery_config(settings)["broker_transport_options"]
    client = connect(settings)
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["port"] == 6390


def test_with_sentinels_the_client_asks_them_for_the_primary():
    client = connect(load_settings(SENTINELS))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "xb"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "secret"
    assert pool.connection_kwargs["socket_timeout"] == 10


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_SENTINELS", "host:notaport"),
        ("REDIS_SENTINELS", ":26379"),
        ("XINBAO_REQUIRE_REPLICA_ACK", "maybe"),
    ],
)
def test_bad_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_replica_ack_settings():
    settings = load_settings(
        {"XINBAO_REQUIRE_REPLICA_ACK": "1", "XINBAO_REPLICA_ACK_TIMEOUT_MS": "250"}
    )
    assert settings.require_replica_ack and settings.replica_ack_timeout_ms == 250
    assert not load_settings({"XINBAO_REQUIRE_REPLICA_ACK": ""}).require_replica_ack
