"""The one place a Redis client is made: a plain URL, or the primary named by Sentinel."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from workflow.settings import Settings

# Every client: a dead server is noticed within seconds, and a command that meets a broken
# connection is retried briefly. Under Sentinel the retry reconnects to whichever server the
# sentinels now name primary; kept short so that while there is none a request gets its 503
# within about a second instead of holding a web worker for several.
TIMEOUTS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "health_check_interval": 30,
}


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)


def connect(settings: Settings, url: str | None = None, *, decode_responses: bool = True,
            **overrides: Any) -> redis.Redis:
    """A client of Xinbao's Redis: ``url`` (default ``settings.redis_url``) or, with
    REDIS_SENTINELS set, the primary the sentinels name (``url`` then gives only the database
    number and password). ``overrides`` replace the timeouts (a CLI may wait longer)."""
    options = {**TIMEOUTS, "retry": _retry(), "decode_responses": decode_responses, **overrides}
    url = url or settings.redis_url
    if not settings.redis_sentinels:
        return redis.Redis.from_url(url, **options)
    parsed = redis.connection.parse_url(url)
    sentinel_kwargs = {
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_timeout": options["socket_connect_timeout"],
    }
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_kwargs)
    for key in ("db", "username", "password"):
        if parsed.get(key) is not None:
            options.setdefault(key, parsed[key])
    # master_for asks the sentinels on every (re)connection, so after a failover the pool's
    # next connection goes to the promoted replica; a connection to a demoted primary is
    # refused (READONLY) and re-made.
    return sentinel.master_for(settings.redis_sentinel_master, **options)


__all__ = ["TIMEOUTS", "connect"]
