"""Revocations race submissions on a real Redis: two apps (two web processes, each its own
token cache), several threads each, tokens revoked while they submit and their records
rewritten (same principal, another JSON form) so the retry path runs too. Checked against
the AOF, Redis's own order of commits: no deal of a token is committed after its
revocation, and every request of a token that started after its revocation returned got
401."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import DEMO_NOW, Clock
from tests.support import RedisServer, free_port
from tests.web.conftest import DONGFANG, HAIXIN, TOKENS, auth, deal_body, dongfang_body
from web import api as api_module
from web import create_app
from workflow import keys, tokens
from workflow.reference import store_reference
from workflow.tokens import Principal, token_digest

pytestmark = pytest.mark.redis

RUN_SECONDS = 3.0


def aof_commands(workdir: Path) -> list[list[bytes]]:
    """Every command of the AOF's incremental files, in the order Redis committed them."""
    commands: list[list[bytes]] = []
    for path in sorted((workdir / "appendonlydir").glob("*.incr.aof")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            end = data.index(b"\r\n", pos)
            count, pos = int(data[pos + 1 : end]), end + 2
            command = []
            for _ in range(count):
                end = data.index(b"\r\n", pos)
                size, pos = int(data[pos + 1 : end]), end + 2
                command.append(data[pos : pos + size])
                pos += size + 2
            commands.append(command)
    return commands


@pytest.fixture
def aof_server(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True, fsync="no").start()
    yield server
    server.stop()


def test_revocations_racing_submissions(aof_server, demo_reference, settings, monkeypatch):
    admin = redis.Redis.from_url(aof_server.url, decode_responses=True)
    store_reference(admin, demo_reference)
    owners = {HAIXIN: dongfang_body, DONGFANG: deal_body}  # the *other* exporter's body
    issued = [(tokens.new_token(), uscc) for uscc in (HAIXIN, DONGFANG) for _ in range(4)]
    for token, uscc in issued:
        tokens.add_token(admin, token, Principal("exporter", uscc))
    published = []
    monkeypatch.setattr(api_module, "publish_drain", lambda: published.append(1))
    # One process's cache tiny, so it is cleared again and again under its threads.
    apps = []
    for n in range(2):
        app = create_app(settings, redis_client=redis.Redis.from_url(
            aof_server.url, decode_responses=True), celery={"broker_url": "memory://"})
        app.config["TESTING"] = True
        app.extensions["xinbao"].clock = Clock(DEMO_NOW)
        if n == 1:
            app.extensions["xinbao"].reference.principals.MAX_ENTRIES = 2
        apps.append(app)

    numbers = iter(range(10**6))
    lock = threading.Lock()
    results = []  # (token, uscc, started, ended, status, body, idempotency key)
    revoked = {}  # token -> (started, returned)
    stop = threading.Event()

    def submitter(app, seed):
        rng, client = random.Random(seed), app.test_client()
        while not stop.is_set():
            token, uscc = rng.choice(issued)
            with lock:
                number = next(numbers)
            kind = rng.random()
            invoice = f"INV-R-{number}"
            if kind < 0.6:
                body = (deal_body if uscc == HAIXIN else dongfang_body)(invoice)
            elif kind < 0.75:
                body = {}  # 422
            elif kind < 0.85:
                body = owners[uscc](invoice)  # 403: another exporter's
            else:
                body = (deal_body if uscc == HAIXIN else dongfang_body)("INV-R-0")  # 409s
            headers = {"Authorization": f"Bearer {token}"}
            key = None
            if rng.random() < 0.3:
                key = f"k-{rng.randrange(20)}"  # replays and reuses
                headers["Idempotency-Key"] = key
            started = time.monotonic()
            rv = client.post("/api/v1/deals", json=body, headers=headers)
            ended = time.monotonic()
            with lock:
                results.append((token, uscc, started, ended, rv.status_code,
                                rv.get_json(), rv.headers.get("Idempotent-Replayed"), key))

    def revoker():
        rng = random.Random(7)
        order = rng.sample(issued, len(issued) - 2)  # two tokens stay live
        for token, _ in order:
            time.sleep(rng.uniform(0.1, RUN_SECONDS / len(order)))
            started = time.monotonic()
            tokens.revoke_digest(admin, token_digest(token))
            revoked[token] = (started, time.monotonic())

    def rewriter():
        # A live token's record in another JSON form (same principal): cached guards fail
        # while the token stays valid, so the second, fresh-read run is exercised. SET XX
        # never brings a revoked token back.
        rng = random.Random(11)
        while not stop.is_set():
            token, uscc = rng.choice(issued)
            record = {"role": "exporter", "subject": uscc}
            raw = json.dumps(record, sort_keys=rng.random() < 0.5,
                             separators=rng.choice([(",", ":"), (", ", ": ")]))
            admin.set(keys.token(token_digest(token)), raw, xx=True)
            time.sleep(0.002)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=submitter, args=(app, 10 * a + t))
                   for a, app in enumerate(apps) for t in range(3)]
        threads += [threading.Thread(target=rewriter)]
        revoking = threading.Thread(target=revoker)
        for thread in [*threads, revoking]:
            thread.start()
        revoking.join()
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    # The order Redis committed things in: each token's revocation, each deal's creation.
    commands = aof_commands(aof_server.workdir)
    revoked_at, created_at = {}, {}
    for at, command in enumerate(commands):
        name = command[0].upper()
        if name == b"DEL" and command[1].startswith(keys.token("").encode()):
            revoked_at.setdefault(command[1].decode(), at)
        elif name == b"HSET" and command[1].startswith(keys.deal("").split("{")[0].encode()):
            created_at.setdefault(command[1].decode(), at)

    statuses: dict[int, int] = {}
    creations = 0
    for token, uscc, started, _ended, status, body, replayed, _key in results:
        statuses[status] = statuses.get(status, 0) + 1
        if status == 202:
            assert body["exporter_uscc"] == uscc, body  # never another exporter's deal
            if not replayed:
                creations += 1
                token_key = keys.token(token_digest(token))
                if token_key in revoked_at:
                    assert created_at[keys.deal(body["id"])] < revoked_at[token_key], (
                        f"deal {body['id']} committed after its token's revocation")
        if token in revoked and started > revoked[token][1]:
            assert status == 401, (status, body)
    assert statuses.get(202, 0) > 20 and statuses.get(401, 0) > 20, statuses
    assert len(revoked_at) == len(revoked)
    # Every deal committed is one a request was answered 202 for (nothing written twice).
    assert len(created_at) == creations, (len(created_at), creations)
    assert len(published) <= creations


def test_a_cached_token_on_a_resyncing_replica_is_try_again_not_revoked(
        tmp_path, settings, monkeypatch):
    """A Sentinel failover: the process still has the token cached, and its Redis is an old
    primary back as a replica, still empty. The create script finds no record (EXPECTED, before
    any write); the token's fresh read then sees the replica (ROLE): 503, never 401."""
    replica = RedisServer(tmp_path / "replica",
                          extra=("--replicaof", "127.0.0.1", str(free_port()))).start()
    try:
        client = redis.Redis.from_url(replica.url, decode_responses=True)
        assert client.execute_command("ROLE")[0] == "slave"
        app = create_app(settings, redis_client=client, celery={"broker_url": "memory://"})
        app.config["TESTING"] = True
        app.extensions["xinbao"].clock = Clock(DEMO_NOW)
        key = keys.token(token_digest(TOKENS["haixin"]))
        record = json.dumps({"role": "exporter", "subject": HAIXIN})
        app.extensions["xinbao"].reference.principals._seen[key] = (
            record, Principal("exporter", HAIXIN))
        rv = app.test_client().post("/api/v1/deals", json=deal_body("INV-R-1"),
                                    headers=auth("haixin"))
        assert rv.status_code == 503, rv.get_json()
        assert client.dbsize() == 0
    finally:
        replica.stop()
