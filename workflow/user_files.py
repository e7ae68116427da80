"""The reference file's ``users`` section: checking it, and staging it over the stored users
(file users replaced as a section, never a user added by ``xinbao user add``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from workflow import keys
from workflow.users import (
    CLI_SOURCE,
    DEMO_PASSWORD,
    UserSpec,
    _fresh_state,
    _new_epoch,
    _profile,
    _s,
)


def is_demo_hash(password_hash: str, hasher: PasswordHasher | None = None) -> bool:
    """Whether the hash is of the published demo password."""
    try:
        return (hasher or PasswordHasher()).verify(password_hash, DEMO_PASSWORD)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def file_user_problems(specs: list[UserSpec], *, refuse_demo: bool) -> list[str]:
    """Why the users of a reference file may not be loaded: the demo password, when refused."""
    if not refuse_demo:
        return []
    return [
        f"users[{index}] (username={spec.username}).password_hash: the demo password (public"
        " in the README); XINBAO_ENV=production refuses it (--allow-demo-tokens to load it"
        " anyway)"
        for index, spec in enumerate(specs)
        if is_demo_hash(spec.password_hash)
    ]


def stored_sources(redis: Any, specs: list[UserSpec]) -> dict[str, tuple[str, str]]:
    """username -> (source, password hash) of the file's users already stored (one round
    trip; read under WATCH by the load)."""
    if not specs:
        return {}
    pipe = redis.pipeline(transaction=False)
    for spec in specs:
        pipe.hmget(keys.user(spec.username), ["source", "password"])
    found = {}
    for spec, (source, hashed) in zip(specs, pipe.execute(), strict=True):
        if source is not None:
            found[spec.username] = (_s(source), _s(hashed))
    return found


def cli_user_conflicts(specs: list[UserSpec], stored: dict[str, tuple[str, str]]) -> list[str]:
    """A problem for each file user whose name a user added by ``xinbao user add`` holds."""
    return [
        f"users[{index}] (username={spec.username}).username: already added by xinbao user"
        " add; a load does not replace it (rename one of them)"
        for index, spec in enumerate(specs)
        if spec.username in stored and stored[spec.username][0] == CLI_SOURCE
    ]


def stage_file_users(
    pipe: Any,
    specs: Iterable[UserSpec],
    previous: set[str],
    stored: dict[str, tuple[str, str]],
    source: str,
    now: datetime,
) -> None:
    """Queue on ``pipe`` (inside its MULTI) the replacement of the file's users: those the
    file no longer names are deleted, the others written with their operator state kept (a
    changed password hash starts a new session generation)."""
    specs = list(specs)
    names = {spec.username for spec in specs}
    for gone in sorted(previous - names):
        pipe.delete(keys.user(gone))
        pipe.srem(keys.users(), gone)
    for spec in specs:
        key = keys.user(spec.username)
        pipe.hset(key, mapping=_profile(spec, source))
        before = stored.get(spec.username)
        if before is None:
            pipe.hset(key, mapping=_fresh_state(now))
        elif before[1] != spec.password_hash:
            pipe.hset(key, "epoch", _new_epoch())
        pipe.sadd(keys.users(), spec.username)
    pipe.delete(keys.file_users())
    if names:
        pipe.sadd(keys.file_users(), *sorted(names))
