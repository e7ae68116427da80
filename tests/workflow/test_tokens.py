"""Token lookup during a Sentinel failover: not found on a replica is "try again"."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

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
