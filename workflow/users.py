"""Users of the web pages: bank officers and exporter users, their passwords and lockout.

An officer belongs to one bank (role ``officer``, optionally also a ``checker`` for
maker-checker); an exporter user belongs to one exporter (USCC). Each user is one Redis hash,
``keys.user(username)``, listed in the set ``keys.users()`` so operators can list users without
scanning keys. Passwords are kept only as argon2id hashes (argon2-cffi's RFC 9106 profile).

Users come from ``xinbao user add`` (source ``cli``) or from the reference file's ``users``
section (source ``file:NAME``). A load replaces the file's users as a section (those it no
longer names are deleted, see ``keys.file_users()``) and never touches a CLI user; it refuses a
file user whose name a CLI user holds. Operator state lives beside the profile and survives a
reload: disabled, failed attempts, locked-until, the session generation.

Lockout: each attempt is counted before its password is checked (``lua/login_begin.lua``), so
even parallel guesses get at most ``LOGIN_ATTEMPTS`` tries before the account locks for
``Settings.lockout_seconds``; a correct password resets the count (``lua/login_end.lua``).
Every refusal (unknown user, wrong password, locked, disabled) costs one hash check, so the
answer's timing does not say whether a username exists.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from redis.exceptions import WatchError

from workflow import keys

OFFICER, EXPORTER = "officer", "exporter"
ROLES = (OFFICER, EXPORTER)
CLI_SOURCE = "cli"
# Wrong passwords in a row before an account is locked (the number).
LOGIN_ATTEMPTS = 5
# Lower-case letters, digits, . _ - ; no ":" (it separates the username in a session id).
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}\Z")
USERNAME_HELP = "use 2-64 lower-case letters, digits or . _ - (starting with a letter or digit)"
PASSWORD_MIN, PASSWORD_MAX = 12, 1024
# The published password of every demo user (README, data/demo.json); production refuses it.
DEMO_PASSWORD = "demo-pass-1234"
# The languages of the pages; a user's choice is kept on their record so it follows them.
LANGUAGES = ("zh", "en")
# A file's hash is checked at every login: refuse parameters that would make one check cost
# a server (256 MiB, 10 passes, 8 lanes are well above any sensible profile).
MAX_MEMORY_KIB, MAX_TIME_COST, MAX_PARALLELISM = 262144, 10, 8


class UserError(ValueError):
    """A user command cannot be done; the message names the field and says why."""


def normalize_username(raw: str) -> str | None:
    """The stored form of a username as typed (trimmed, lower case), or None if it cannot be
    one (so a login with it is simply refused)."""
    name = (raw or "").strip().lower()
    return name if USERNAME_RE.fullmatch(name) else None


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be set, or None."""
    if len(password) < PASSWORD_MIN:
        return f"must be at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"must be at most {PASSWORD_MAX} characters"
    return None


def hash_problem(value: str) -> str | None:
    """Why ``value`` is not an argon2id hash Xinbao accepts from a file, or None."""
    if not isinstance(value, str) or not value.startswith("$argon2id$"):
        return "must be an argon2id hash ($argon2id$v=19$m=...); make one with `xinbao user hash`"
    try:
        params = extract_parameters(value)
    except InvalidHashError:
        return "not a well-formed argon2id hash; make one with `xinbao user hash`"
    if params.type is not Type.ID:
        return "must be an argon2id hash"
    if (
        params.memory_cost > MAX_MEMORY_KIB
        or params.time_cost > MAX_TIME_COST
        or params.parallelism > MAX_PARALLELISM
    ):
        return (
            f"argon2 parameters too costly (at most m={MAX_MEMORY_KIB}, t={MAX_TIME_COST},"
            f" p={MAX_PARALLELISM})"
        )
    profile = _server_profile()
    if params != profile:
        # Weaker parameters are cheap to crack offline; other ones make a refusal for this
        # user take a different time than for an unknown name, and are rehashed at login.
        return (
            f"must use Xinbao's argon2id parameters (m={profile.memory_cost},"
            f" t={profile.time_cost}, p={profile.parallelism}, salt {profile.salt_len} bytes,"
            f" hash {profile.hash_len} bytes); make it with `xinbao user hash`"
        )
    return None


@lru_cache(maxsize=1)
def _server_profile() -> Any:
    """The parameters of the hashes this server makes (and checks unknown names against)."""
    return extract_parameters(PasswordHasher().hash("profile"))


@dataclass(frozen=True)
class UserSpec:
    """A user as the reference file or ``xinbao user add`` describes it."""

    username: str
    bank_id: str | None = None
    exporter_uscc: str | None = None
    checker: bool = False
    password_hash: str = ""

    @property
    def role(self) -> str:
        return OFFICER if self.bank_id else EXPORTER

    @property
    def subject(self) -> str:
        return self.bank_id or self.exporter_uscc or ""


@dataclass(frozen=True)
class User:
    """One stored user with its operator state (never its password hash)."""

    username: str
    role: str
    bank_id: str | None
    exporter_uscc: str | None
    checker: bool
    disabled: bool
    source: str
    created_at: str
    failed_attempts: int
    # Epoch seconds the account is locked until; 0 when never locked.
    locked_until: int
    # Changes when the password changes or the user is disabled: it ends older sessions.
    epoch: str
    # The page language the user chose ("zh", "en"), or None: their role's default.
    language: str | None = None

    @property
    def subject(self) -> str:
        return self.bank_id or self.exporter_uscc or ""

    @property
    def session_id(self) -> str:
        return f"{self.username}:{self.epoch}"

    def locked_at(self, now: int) -> bool:
        return self.locked_until > now


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one password check. ``reason`` is for logs only: a page shows every
    refusal alike ("unknown", "wrong_password", "locked", "disabled")."""

    user: User | None
    reason: str
    locked_until: int = 0

    @property
    def ok(self) -> bool:
        return self.user is not None


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _user_of(raw: dict) -> User | None:
    data = {_s(k): _s(v) for k, v in raw.items()}
    if not data.get("username"):
        return None
    return User(
        username=data["username"],
        role=data.get("role", ""),
        bank_id=data.get("bank_id") or None,
        exporter_uscc=data.get("exporter_uscc") or None,
        checker=data.get("checker") == "1",
        disabled=data.get("disabled") == "1",
        source=data.get("source", ""),
        created_at=data.get("created_at", ""),
        failed_attempts=int(data.get("failed") or 0),
        locked_until=int(data.get("locked_until") or 0),
        epoch=data.get("epoch", ""),
        language=data.get("language") if data.get("language") in LANGUAGES else None,
    )


def _now_iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _profile(spec: UserSpec, source: str) -> dict[str, str]:
    return {
        "username": spec.username,
        "role": spec.role,
        "bank_id": spec.bank_id or "",
        "exporter_uscc": spec.exporter_uscc or "",
        "checker": "1" if spec.checker else "0",
        "password": spec.password_hash,
        "source": source,
    }


def _fresh_state(now: datetime) -> dict[str, str]:
    return {
        "created_at": _now_iso(now),
        "disabled": "0",
        "failed": "0",
        "locked_until": "0",
        "epoch": _new_epoch(),
    }


class Users:
    """The user store: add, list, disable, unlock, and check passwords with lockout."""

    def __init__(
        self,
        redis: Any,
        *,
        lockout_seconds: int = 900,
        session_idle_seconds: int = 1800,
        clock: Callable[[], datetime] | None = None,
        hasher: PasswordHasher | None = None,
    ):
        self.redis = redis
        self.lockout_seconds = lockout_seconds
        self.session_idle_seconds = session_idle_seconds
        # Injectable so tests can step past a lockout; the web uses it for fresh logins too.
        self.clock = clock or (lambda: datetime.now(UTC))
        self.hasher = hasher or PasswordHasher()
        lua = resources.files("workflow").joinpath("lua")
        self._begin = redis.register_script(lua.joinpath("login_begin.lua").read_text())
        self._end = redis.register_script(lua.joinpath("login_end.lua").read_text())
        self._hset_existing = redis.register_script(
            lua.joinpath("hset_existing.lua").read_text()
        )

    def now(self) -> int:
        """The clock's time in epoch seconds."""
        return int(self.clock().timestamp())

    @cached_property
    def _dummy_hash(self) -> str:
        # Checked against when there is no real hash to check, so a refusal costs the same.
        return self.hasher.hash(secrets.token_hex(16))

    def hash_password(self, password: str) -> str:
        """The argon2id hash of ``password``; UserError if it may not be set."""
        problem = password_problem(password)
        if problem:
            raise UserError(f"password: {problem}")
        return self.hasher.hash(password)

    # --- reads ---------------------------------------------------------------------------

    def get(self, username: str) -> User | None:
        name = normalize_username(username)
        if name is None:
            return None
        return _user_of(self.redis.hgetall(keys.user(name)))

    def may_check(self, username: str, bank_id: str) -> bool:
        """Whether ``username`` is an enabled officer of ``bank_id`` with the checker role
        (the maker-checker rule's second approver)."""
        user = self.get(username)
        return bool(user and user.checker and not user.disabled and user.bank_id == bank_id)

    def open_session(self, user: User) -> str:
        """Start a server-side session for ``user``; the returned id goes into the signed
        cookie. It lives while used (idle limit) and ends at once with ``close_session``."""
        key = secrets.token_urlsafe(24)
        self.redis.set(keys.login_session(key), user.username, ex=self.session_idle_seconds)
        return f"{user.session_id}:{key}"

    def close_session(self, session_id: str) -> None:
        """Sign one session out: a copy of its cookie is worth nothing afterwards."""
        key = session_id.rpartition(":")[2]
        if key:
            self.redis.delete(keys.login_session(key))

    def by_session_id(self, session_id: str) -> User | None:
        """The user a session speaks for, or None when it was signed out or idle too long, or
        the user was disabled, deleted or changed password since (generation mismatch)."""
        username, _, rest = (session_id or "").partition(":")
        epoch, _, key = rest.partition(":")
        if not key:
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.login_session(key))
        pipe.expire(keys.login_session(key), self.session_idle_seconds)
        owner, _ = pipe.execute()
        if owner is None or _s(owner) != username:
            return None
        user = self.get(username)
        if user is None or user.disabled or not epoch or user.epoch != epoch:
            return None
        return user

    def list(self) -> list[User]:
        """Every user, by username."""
        names = sorted(_s(n) for n in self.redis.smembers(keys.users()))
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.user(name))
        found = [_user_of(raw) for raw in pipe.execute()]
        return [u for u in found if u is not None]

    # --- operator commands -------------------------------------------------------------

    def add(self, spec: UserSpec, password: str, source: str = CLI_SOURCE) -> User:
        """Create a user with ``password`` (hashed here); UserError if the name is taken."""
        name = normalize_username(spec.username)
        if name is None or name != spec.username:
            raise UserError(f"username: {USERNAME_HELP}")
        if (spec.bank_id is None) == (spec.exporter_uscc is None):
            raise UserError("give exactly one of a bank or an exporter")
        if spec.checker and not spec.bank_id:
            raise UserError("checker: only an officer of a bank can be a checker")
        hashed = self.hash_password(password)
        record = {
            **_profile(
                UserSpec(name, spec.bank_id, spec.exporter_uscc, spec.checker, hashed), source
            ),
            **_fresh_state(self.clock()),
        }
        key = keys.user(name)
        with self.redis.pipeline(transaction=True) as pipe:
            # WATCH: a user created by a concurrent add or load between the check and the
            # write makes EXEC fail instead of being overwritten.
            pipe.watch(key)
            if pipe.exists(key):
                raise UserError(f"username: {name} already exists")
            pipe.multi()
            pipe.hset(key, mapping=record)
            pipe.sadd(keys.users(), name)
            try:
                pipe.execute()
            except WatchError:
                raise UserError(f"username: {name} already exists") from None
        user = self.get(name)
        assert user is not None
        return user

    def _update(self, username: str, fields: dict[str, str]) -> User:
        name = normalize_username(username)
        flat = [part for pair in fields.items() for part in pair]
        if name is None or not self._hset_existing(keys=[keys.user(name)], args=flat):
            raise UserError(f"username: no user {username}")
        user = self.get(name)
        assert user is not None
        return user

    def set_disabled(self, username: str, disabled: bool) -> User:
        """Disable (ending the user's sessions) or enable a user."""
        fields = {"disabled": "1" if disabled else "0"}
        if disabled:
            fields["epoch"] = _new_epoch()
        return self._update(username, fields)

    def unlock(self, username: str) -> User:
        """Lift a lockout and forget the failed attempts."""
        return self._update(username, {"failed": "0", "locked_until": "0"})

    def set_language(self, username: str, language: str) -> User:
        """Remember the page language the user chose (kept across reloads of the file)."""
        if language not in LANGUAGES:
            raise UserError(f"language: one of {', '.join(LANGUAGES)}")
        return self._update(username, {"language": language})

    def set_password(self, username: str, password: str) -> User:
        """Set a new password; the user's other sessions end."""
        hashed = self.hash_password(password)
        return self._update(username, {"password": hashed, "epoch": _new_epoch()})

    # --- login ---------------------------------------------------------------------------

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def authenticate(self, username: str, password: str) -> LoginResult:
        """Check a login; every refusal costs one hash check, whatever its reason."""
        password = password or ""
        name = normalize_username(username)
        if name is None or len(password) > PASSWORD_MAX:
            self._verify(self._dummy_hash, password[:PASSWORD_MAX])
            return LoginResult(None, "unknown")
        now = self.now()
        limits = [LOGIN_ATTEMPTS, self.lockout_seconds]
        begun = [_s(v) for v in self._begin(keys=[keys.user(name)], args=[now, *limits])]
        if begun[0] != "ok":
            self._verify(self._dummy_hash, password)
            until = int(begun[1]) if begun[0] == "locked" else 0
            return LoginResult(None, begun[0], until)
        stored = begun[1]
        ok = self._verify(stored, password)
        rehashed = ""
        if ok and self.hasher.check_needs_rehash(stored):
            rehashed = self.hasher.hash(password)
        locked_until = int(
            self._end(
                keys=[keys.user(name)],
                args=["ok" if ok else "fail", now, *limits, stored, rehashed],
            )
            or 0
        )
        if not ok:
            return LoginResult(None, "wrong_password", locked_until)
        return LoginResult(self.get(name), "ok")
