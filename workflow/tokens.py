"""API tokens: stored only as SHA-256 digests, registered so they can be listed and revoked.

Each token is written as ``keys.token(digest)`` (the principal, the one read per API request)
together with its entries in the registry hashes ``keys.token_registry()`` (role, subject,
source) and ``keys.token_added()`` (when first added), which ``xinbao token list`` reads
instead of scanning keys. A revoked token loses all three and is remembered in
``keys.tokens_revoked()``, so reloading an old reference file cannot bring it back.

Demo tokens are public (README, data/demo.json): a token is a demo token when it starts with
``demo-`` or is one of the published demo tokens (by digest, so ``list`` can flag them even
when they were loaded before the registry existed). Production refuses to load them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from workflow import keys
from workflow.identifiers import IDENTIFIER_RE

EXPORTER, BANK = "exporter", "bank"
PRODUCTION = "production"
DEMO_PREFIX = "demo-"
# The SHA-256 of each token published in data/demo.json and the README (a test keeps the two
# in step).
DEMO_TOKEN_DIGESTS = frozenset(
    {
        "b10d6ce71f1d0607f4ad4e2e7a800e29989faf1bdd0ca22fa087383f19f2a3d6",
        "564e354a4cb5dc35faca06b981077ebb2a2bb008c545d64615bdf1fc21caaa34",
        "9f14903df99180f72ab79644065b9c0e4b4122959df183a7911ceb0283029c70",
        "b82e17bc7645588060a93c373b9d4f452339df1861fe1cc023951b45fd1350b6",
        "31ed2c25ed4b88075fdb9797c603e1c4a578708ffb6b52336a54b9f4faeb9d1d",
        "41d22064bc908ffdb00e1ad582d6074e64baa7923ab76312de31414a89412037",
    }
)
# RFC 6750's b64token: what an Authorization: Bearer header can carry unescaped.
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
TOKEN_MIN, TOKEN_MAX = 16, 256
# Bank ids are part of key names: the safe identifier pattern (anchored at the end).
BANK_ID_RE = IDENTIFIER_RE
PREFIX_SHOWN = 12
PREFIX_MIN = 6


@dataclass(frozen=True)
class Principal:
    """Who an API token speaks for: one exporter or one bank."""

    role: str  # "exporter" | "bank"
    subject: str  # the exporter's USCC or the bank id


@dataclass(frozen=True)
class TokenEntry:
    """One registered token as ``xinbao token list`` shows it (never the token itself)."""

    digest: str
    role: str
    subject: str
    added_at: str
    source: str

    @property
    def prefix(self) -> str:
        return self.digest[:PREFIX_SHOWN]

    @property
    def demo(self) -> bool:
        return self.digest in DEMO_TOKEN_DIGESTS


class TokenError(ValueError):
    """A token command cannot be done; the message says why."""


def token_digest(token: str) -> str:
    """Tokens are stored only as their SHA-256, so a copy of Redis gives no usable credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a bearer token, or None."""
    if not TOKEN_MIN <= len(token) <= TOKEN_MAX:
        return f"must be {TOKEN_MIN}-{TOKEN_MAX} characters"
    if not TOKEN_RE.fullmatch(token):
        return "use only letters, digits and - . _ ~ + / (then optional =)"
    return None


def is_demo_token(token: str) -> bool:
    return token.lower().startswith(DEMO_PREFIX) or token_digest(token) in DEMO_TOKEN_DIGESTS


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def revoked_digests(redis: Any, tokens: list[tuple[str, Principal]]) -> frozenset[str]:
    """The digests among ``tokens`` that were revoked (one round trip)."""
    digests = [token_digest(token) for token, _ in tokens]
    if not digests:
        return frozenset()
    found = redis.hmget(keys.tokens_revoked(), digests)
    return frozenset(d for d, raw in zip(digests, found, strict=True) if raw)


def stage_tokens(
    pipe: Any,
    tokens: Iterable[tuple[str, Principal]],
    source: str,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Queue on ``pipe`` (inside its MULTI) the writes that store and register ``tokens``,
    except those whose digest is in ``skip`` (revoked: they never come back).

    Nothing is read, so this fits in any transaction. When a token was first added is kept
    (HSETNX): loading the same file again changes nothing.
    """
    for token, principal in tokens:
        digest = token_digest(token)
        if digest in skip:
            continue
        pipe.set(keys.token(digest), json.dumps(asdict(principal)))
        entry = {**asdict(principal), "source": source}
        pipe.hset(keys.token_registry(), digest, json.dumps(entry, sort_keys=True))
        pipe.hsetnx(keys.token_added(), digest, _now())


def file_token_problems(tokens: list[tuple[str, Principal]], *, refuse_demo: bool) -> list[str]:
    """Why the tokens of a reference file may not be loaded: demo tokens, when refused."""
    if not refuse_demo:
        return []
    return [
        f"tokens[{index}].token: a demo token (public in data/demo.json and the README);"
        f" XINBAO_ENV={PRODUCTION} refuses it (--allow-demo-tokens to load it anyway)"
        for index, (token, _) in enumerate(tokens)
        if is_demo_token(token)
    ]


def revoked_in_file(redis: Any, tokens: list[tuple[str, Principal]]) -> list[str]:
    """A warning for each token of a file that was revoked: the load leaves it revoked."""
    revoked = revoked_digests(redis, tokens)
    return [
        f"tokens[{index}].token: revoked earlier, so not loaded; remove it from the file"
        for index, (token, _) in enumerate(tokens)
        if token_digest(token) in revoked
    ]


def bound_elsewhere(redis: Any, tokens: list[tuple[str, Principal]]) -> list[str]:
    """A problem for each token of a file that is live for another principal: a load never
    re-binds a token (an exporter's token would start speaking for a bank). One round trip."""
    if not tokens:
        return []
    stored = redis.mget([keys.token(token_digest(token)) for token, _ in tokens])
    problems = []
    for index, ((_, principal), raw) in enumerate(zip(tokens, stored, strict=True)):
        if raw is None:
            continue
        current = Principal(**json.loads(raw))
        if current != principal:
            problems.append(
                f"tokens[{index}].token: already in use for {current.role} {current.subject};"
                f" a load does not move a token to another {principal.role}"
                " (revoke it first, or give the file a new token)"
            )
    return problems


def add_token(redis: Any, token: str, principal: Principal, source: str = "cli") -> TokenEntry:
    """Store and register one token; raises TokenError if it is malformed, known or revoked."""
    problem = token_problem(token)
    if problem:
        raise TokenError(f"token {problem}")
    digest = token_digest(token)
    if redis.hexists(keys.tokens_revoked(), digest):
        raise TokenError("this token was revoked; issue a new one")
    if redis.hexists(keys.token_registry(), digest) or redis.exists(keys.token(digest)):
        raise TokenError("this token is already in use")
    pipe = redis.pipeline(transaction=True)
    stage_tokens(pipe, [(token, principal)], source)
    pipe.execute()
    return _entry(
        digest, redis.hget(keys.token_registry(), digest), redis.hget(keys.token_added(), digest)
    )


def _entry(digest: str, raw: str | bytes, added_at: str | bytes | None) -> TokenEntry:
    data = json.loads(raw)
    return TokenEntry(digest, data["role"], data["subject"], _s(added_at or ""), data["source"])


def list_tokens(redis: Any) -> list[TokenEntry]:
    """Every registered token, oldest first; plus published demo tokens stored before the
    registry existed (shown with source "unregistered") so they can be found and revoked."""
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(keys.token_registry())
    pipe.hgetall(keys.token_added())
    registry, added = pipe.execute()
    added = {_s(digest): at for digest, at in added.items()}
    entries = [_entry(_s(d), raw, added.get(_s(d))) for d, raw in registry.items()]
    registered = {entry.digest for entry in entries}
    legacy = sorted(DEMO_TOKEN_DIGESTS - registered)
    pipe = redis.pipeline(transaction=False)
    for digest in legacy:
        pipe.get(keys.token(digest))
    for digest, raw in zip(legacy, pipe.execute() if legacy else [], strict=True):
        if raw is not None:
            principal = json.loads(raw)
            entries.append(
                TokenEntry(digest, principal["role"], principal["subject"], "", "unregistered")
            )
    return sorted(entries, key=lambda e: (e.added_at, e.digest))


def find_digest(redis: Any, prefix: str) -> str:
    """The one listed token whose digest starts with ``prefix``; TokenError if none or several."""
    prefix = prefix.strip().lower()
    if len(prefix) < PREFIX_MIN or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise TokenError(
            f"give at least {PREFIX_MIN} hex digits of the digest that xinbao token list shows"
        )
    found = [e.digest for e in list_tokens(redis) if e.digest.startswith(prefix)]
    if not found:
        raise TokenError(f"no token with a digest starting {prefix}")
    if len(found) > 1:
        raise TokenError(
            f"{len(found)} tokens have a digest starting {prefix}: give more digits"
            f" ({', '.join(d[: len(prefix) + 4] for d in sorted(found))})"
        )
    return found[0]


def revoke_digest(redis: Any, digest: str) -> Principal:
    """Revoke the token with this digest at once; raises TokenError if it is not stored."""
    raw = redis.get(keys.token(digest))
    if raw is None:
        raise TokenError("no such token (already revoked, or never added)")
    principal = Principal(**json.loads(raw))
    record = {**asdict(principal), "revoked_at": _now()}
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.token(digest))
    pipe.hdel(keys.token_registry(), digest)
    pipe.hdel(keys.token_added(), digest)
    pipe.hset(keys.tokens_revoked(), digest, json.dumps(record, sort_keys=True))
    pipe.execute()
    return principal


def lookup(redis: Any, token: str) -> Principal | None:
    """The principal a presented token speaks for, or None (unknown or revoked).

    A token not found is looked up again with the server's role on the same connection: in a
    Sentinel failover a client can briefly reach a restarted old primary that is still
    resyncing as a replica (empty), and a good token must then get "try again" (a Redis
    ConnectionError: 503), never "revoked"."""
    if token_problem(token):
        return None
    raw = _read(redis, keys.token(token_digest(token)))
    return None if raw is None else Principal(**json.loads(raw))


def _read(redis: Any, key: str) -> str | None:
    """The record at a token's key (see ``lookup`` for the ROLE re-check of a miss)."""
    raw = redis.get(key)
    if raw is None:
        pipe = redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.execute_command("ROLE")
        raw, role = pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        if not isinstance(role, Exception) and _s(role[0]) != "master":
            # The connection goes back to the pool still open to the replica, and only a
            # write (READONLY) would drop it: every retry would meet the replica again. Drop
            # the idle ones, so the next asks Sentinel for the primary (as redis-py does when
            # Sentinel names a new one); those in use by other requests are left alone.
            pool = getattr(redis, "connection_pool", None)
            if pool is not None:
                pool.disconnect(inuse_connections=False)
            raise RedisConnectionError("token lookup reached a replica; retry on the primary")
    return None if raw is None else _s(raw)


class PrincipalCache:
    """The principals of the API tokens this process has seen, each with the record it was
    read from, so the hot path (a submission) authenticates without a round trip of its own.

    A hit is only as good as the check that follows it: the caller must commit its write with
    ``Ops.expect(*guard)``, so a token revoked or re-issued since it was cached is refused in
    the same atomic step as the write (and then forgotten here), never honoured. Requests
    that only read use ``lookup``, which reads the record each time."""

    # Tokens are few (one per exporter or bank system); the bound only stops a flood of
    # distinct valid tokens from growing the process.
    MAX_ENTRIES = 4096

    def __init__(self, redis: Any):
        self.redis = redis
        self._seen: dict[str, tuple[str, Principal]] = {}

    def principal(self, token: str) -> tuple[Principal | None, tuple[str, str] | None]:
        """The token's principal and the guard its use must be committed with: (key, record),
        or (None, None) for an unknown or revoked token (never cached)."""
        if token_problem(token):
            return None, None
        key = keys.token(token_digest(token))
        seen = self._seen.get(key)
        if seen is None:
            raw = _read(self.redis, key)
            if raw is None:
                return None, None
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen.clear()
            seen = self._seen[key] = (raw, Principal(**json.loads(raw)))
        return seen[1], (key, seen[0])

    def forget(self, key: str) -> None:
        """Drop what was cached for the token stored at ``key`` (its guard failed)."""
        self._seen.pop(key, None)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
