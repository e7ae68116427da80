"""The API while the token lookup reaches a replica: 503 try-again (never 401, never 500)."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import auth


class _OnReplica:
    """The store's client, except that the lookup's second read meets a resyncing replica."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def pipeline(self, transaction: bool = True) -> Any:
        class Pipe:
            def get(self, key: str) -> None:
                pass

            def execute_command(self, *args: Any) -> None:
                pass

            def execute(self, raise_on_error: bool = True) -> list:
                return [None, ["slave", "127.0.0.1", 6379, "sync", -1]]

        return Pipe()


def test_an_unknown_token_on_a_replica_is_503_with_retry_after(app, client):
    reference = app.extensions["xinbao"].reference
    reference.redis = _OnReplica(reference.redis)
    rv = client.get("/api/v1/deals", headers={"Authorization": "Bearer never-issued-token-0001"})
    assert rv.status_code == 503, rv.get_json()
    assert rv.headers["Retry-After"] == "2"
    assert rv.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    # A token the replica does hold is served (the first read finds it).
    assert client.get("/api/v1/deals", headers=auth("haixin")).status_code == 200
