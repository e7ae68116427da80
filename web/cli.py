"""The ``xinbao`` command (and ``flask load``): load reference data, manage tokens and users."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import redis
from flask.cli import with_appcontext

from web.cli_support import FILE, fail
from web.health import CHECKS, health_client, readiness
from workflow import keys, tokens, user_files, users
from workflow.demo import expand_relative_dates_json
from workflow.identifiers import printable, uscc_problem
from workflow.logs import configure_logging
from workflow.redis_client import connect
from workflow.reference import (
    ReferenceData,
    ReferenceFileError,
    ReferenceLoadConflict,
    decode_reference_text,
    parse_reference_json,
    store_reference,
)
from workflow.settings import SettingsError, load_settings


def read_reference_file(path: Path) -> ReferenceData:
    """Read and validate the whole file; raises ReferenceFileError for any problem with it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReferenceFileError([f"cannot read the file: {exc.strerror or exc}"]) from None
    text = decode_reference_text(raw)
    # Dates written "today-14" (the demo's) count from the day of loading, in UTC as the workflow.
    data = parse_reference_json(expand_relative_dates_json(text, datetime.now(UTC).date()))
    data.source = f"file:{printable(path.name)}"
    return data


def load_file(
    path: Path, client: redis.Redis, *, production: bool = False, allow_demo: bool = False
) -> dict[str, int]:
    """Validate the whole file, then write it in one transaction, each section it contains
    replacing that section; returns their counts. Raises ReferenceFileError."""
    data = read_reference_file(path)
    refuse_demo = production and not allow_demo
    problems = tokens.file_token_problems(data.tokens, refuse_demo=refuse_demo)
    problems += user_files.file_user_problems(data.users, refuse_demo=refuse_demo)
    if problems:
        raise ReferenceFileError(problems)
    for warning in tokens.revoked_in_file(client, data.tokens):
        click.echo(f"{click.format_filename(path)}: {printable(warning)}", err=True)
    counts = store_reference(client, data)
    return {section: n for section, n in counts.items() if section in (data.sections or ())}


def _load(path: Path, client: redis.Redis, *, production: bool, allow_demo: bool) -> None:
    name = click.format_filename(path)
    try:
        counts = load_file(path, client, production=production, allow_demo=allow_demo)
    except ReferenceFileError as exc:
        click.echo(f"{name}: not loaded, {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  {printable(problem)}", err=True)
        sys.exit(1)
    except ReferenceLoadConflict as exc:
        click.echo(f"{name}: not loaded, {exc}", err=True)
        sys.exit(1)
    summary = ", ".join(f"{n} {section}" for section, n in counts.items()) or "nothing"
    click.echo(f"{name}: loaded {summary} ({load_note(set(counts))})")


def load_note(sections: set[str]) -> str:
    """What a load did to the stored sections, in words: only tokens are added, not replaced."""
    notes = []
    if sections - {"tokens"}:
        notes.append("each section replacing the stored one")
    if "tokens" in sections:
        notes.append("tokens added to the stored ones")
    return "; ".join([*notes, "sections not in the file untouched"])


# A directory or an unreadable file gets the same "not loaded" report as any bad file; only
# a path that does not exist is a usage error.
_ALLOW_DEMO = click.option(
    "--allow-demo-tokens",
    is_flag=True,
    help="With XINBAO_ENV=production, load the file's demo tokens and demo users anyway"
    " (never on a real stack).",
)


@click.command("load")
@click.argument("file", type=FILE)
@_ALLOW_DEMO
@with_appcontext
def load_command(file: Path, allow_demo_tokens: bool) -> None:
    """Load reference data (policies, limits, declarations, whitelists, banks, tokens)."""
    from flask import current_app

    settings = current_app.extensions["xinbao_settings"]
    _load(
        file,
        current_app.extensions["redis"],
        production=settings.production,
        allow_demo=allow_demo_tokens,
    )


@click.group()
def main() -> None:
    """Xinbao operator commands."""
    configure_logging()
    try:
        load_settings()
    except SettingsError as exc:
        # Checked before any command runs: a mistyped XINBAO_ENV must not load demo tokens
        # into what the operator believes is production.
        fail(str(exc))


_REDIS_URL = click.option(
    "--redis-url", envvar="REDIS_URL", help="Redis to use (default $REDIS_URL)."
)


def _client(redis_url: str | None) -> redis.Redis:
    # With REDIS_SENTINELS set the URL gives the database only; the sentinels name the primary.
    return connect(load_settings(), redis_url, socket_timeout=None)


@main.command("load")
@click.argument("file", type=FILE)
@_REDIS_URL
@_ALLOW_DEMO
def load(file: Path, redis_url: str | None, allow_demo_tokens: bool) -> None:
    """Load reference data from FILE (JSON): each section in it replaces that section whole,
    sections it leaves out are untouched. A bad file loads nothing. Safe to repeat.

    With XINBAO_ENV=production a file holding demo tokens (demo-..., the ones of
    data/demo.json) or users with the demo password is refused unless --allow-demo-tokens.
    """
    settings = load_settings()
    _load(
        file,
        _client(redis_url),
        production=settings.production,
        allow_demo=allow_demo_tokens,
    )


@main.command("health")
@_REDIS_URL
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(CHECKS),
    help="Check only this (repeatable): redis, broker, workers, beat. Default: all.",
)
def health_command(redis_url: str | None, only: tuple[str, ...]) -> None:
    """Say whether the stack is ready, as GET /readyz does, and exit 1 when it is not
    (docker-compose's health check of beat runs `xinbao health --only beat`)."""
    settings = load_settings()
    client = health_client(settings, redis_url)
    body = readiness(client, settings, settings.broker_url, only or CHECKS)
    click.echo(json.dumps(body, ensure_ascii=False))
    if body["status"] != "ready":
        sys.exit(1)


@main.group("token")
def token() -> None:
    """Issue, revoke and list API tokens (Redis keeps only their SHA-256)."""


def _read_stdin_token() -> str:
    # One line; the trailing newline of `echo` or a here-string is not part of the token.
    value = sys.stdin.readline().strip()
    if not value:
        fail("no token on stdin")
    return value


@token.command("add")
@click.option("--exporter", "uscc", metavar="USCC", help="The token speaks for this exporter.")
@click.option("--bank", "bank_id", metavar="BANK_ID", help="The token speaks for this bank.")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the token from stdin instead of generating one.",
)
@_REDIS_URL
def token_add(
    uscc: str | None, bank_id: str | None, from_stdin: bool, redis_url: str | None
) -> None:
    """Issue a token for one exporter or one bank; a generated token is printed only once."""
    if (uscc is None) == (bank_id is None):
        fail("give exactly one of --exporter USCC or --bank BANK_ID")
    client = _client(redis_url)
    if uscc is not None:
        problem = uscc_problem(uscc)
        if problem:
            fail(f"--exporter: {problem}")
        if not client.exists(keys.exporter(uscc)):
            fail(f"no exporter {uscc} in the reference data; load it first")
        principal = tokens.Principal(tokens.EXPORTER, uscc)
    else:
        assert bank_id is not None
        if not tokens.BANK_ID_RE.fullmatch(bank_id):
            fail("--bank: use A-Z, 0-9, _ . -")
        if not client.exists(keys.bank(bank_id)):
            fail(f"no bank {bank_id} in the reference data; load it first")
        principal = tokens.Principal(tokens.BANK, bank_id)
    value = _read_stdin_token() if from_stdin else tokens.new_token()
    if from_stdin and load_settings().production and tokens.is_demo_token(value):
        fail("a demo token is public; XINBAO_ENV=production refuses it")
    try:
        entry = tokens.add_token(client, value, principal, source="cli")
    except tokens.TokenError as exc:
        fail(str(exc))
    click.echo(
        f"added token {entry.prefix} for {entry.role} {entry.subject}"
        + ("" if from_stdin else "; it is shown only this once:"),
        err=True,
    )
    if not from_stdin:
        click.echo(value)


@token.command("revoke")
@click.argument("prefix", required=False)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the token itself from stdin.")
@_REDIS_URL
def token_revoke(prefix: str | None, from_stdin: bool, redis_url: str | None) -> None:
    """Revoke a token by the digest prefix `xinbao token list` shows (or the token on stdin).

    The API answers 401 to it from the next request on.
    """
    if (prefix is None) == (not from_stdin):
        fail("give a digest PREFIX or --stdin")
    client = _client(redis_url)
    try:
        if from_stdin:
            value = _read_stdin_token()
            if tokens.token_problem(value):
                fail("that is not a token Xinbao could have issued")
            digest = tokens.token_digest(value)
        else:
            assert prefix is not None
            digest = tokens.find_digest(client, prefix)
        principal = tokens.revoke_digest(client, digest)
    except tokens.TokenError as exc:
        fail(str(exc))
    click.echo(
        f"revoked token {digest[: tokens.PREFIX_SHOWN]} of {principal.role} {principal.subject}"
    )


@token.command("list")
@_REDIS_URL
def token_list(redis_url: str | None) -> None:
    """List live tokens: digest prefix, role, subject, when and how added (never the token)."""
    entries = tokens.list_tokens(_client(redis_url))
    click.echo(f"{'DIGEST':<12}  {'ROLE':<8}  {'SUBJECT':<20}  {'ADDED':<25}  SOURCE")
    for e in entries:
        source = e.source + ("  (demo token)" if e.demo else "")
        click.echo(
            f"{e.prefix:<12}  {e.role:<8}  {e.subject:<20}  {e.added_at or '-':<25}  {source}"
        )


# --- users --------------------------------------------------------------------------------


@main.group("user")
def user() -> None:
    """Add, list, disable and unlock the users of the web pages (officers, exporter users)."""


_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.",
)


def _user_store(redis_url: str | None) -> users.Users:
    return users.Users(_client(redis_url), lockout_seconds=load_settings().lockout_seconds)


def _read_password(from_stdin: bool) -> str:
    """A new password: one stdin line, or typed twice at a hidden prompt (never an argument)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, err=True
        )
    problem = users.password_problem(password)
    if problem:
        fail(f"password: {problem}")
    if load_settings().production and password == users.DEMO_PASSWORD:
        fail("password: the demo password is public; XINBAO_ENV=production refuses it")
    return password


def _username(raw: str) -> str:
    name = users.normalize_username(raw)
    if name is None:
        fail(f"USERNAME: {users.USERNAME_HELP}")
    assert name is not None
    return name


@user.command("add")
@click.argument("username")
@click.option("--bank", "bank_id", metavar="BANK_ID", help="An officer of this bank.")
@click.option("--checker", is_flag=True, help="The officer may also check approvals.")
@click.option("--exporter", "uscc", metavar="USCC", help="A user of this exporter.")
@_PASSWORD_STDIN
@_REDIS_URL
def user_add(
    username: str,
    bank_id: str | None,
    checker: bool,
    uscc: str | None,
    password_stdin: bool,
    redis_url: str | None,
) -> None:
    """Add USERNAME: an officer (--bank, optionally --checker) or an exporter user
    (--exporter). The password is asked twice (or read from stdin), never an argument."""
    name = _username(username)
    if (uscc is None) == (bank_id is None):
        fail("give exactly one of --bank BANK_ID or --exporter USCC")
    if checker and bank_id is None:
        fail("--checker: only an officer of a bank can be a checker")
    store = _user_store(redis_url)
    if uscc is not None:
        problem = uscc_problem(uscc)
        if problem:
            fail(f"--exporter: {problem}")
        if not store.redis.exists(keys.exporter(uscc)):
            fail(f"--exporter: no exporter {uscc} in the reference data; load it first")
    else:
        assert bank_id is not None
        if not tokens.BANK_ID_RE.fullmatch(bank_id):
            fail("--bank: use A-Z, 0-9, _ . -")
        if not store.redis.exists(keys.bank(bank_id)):
            fail(f"--bank: no bank {bank_id} in the reference data; load it first")
    if store.get(name) is not None:
        fail(f"USERNAME: {name} already exists")
    password = _read_password(password_stdin)
    try:
        added = store.add(users.UserSpec(name, bank_id, uscc, checker), password)
    except users.UserError as exc:
        fail(str(exc))
    role = added.role + (" + checker" if added.checker else "")
    click.echo(f"added {role} {added.username} of {added.subject}")


def _locked_text(user_: users.User, now: int) -> str:
    if not user_.locked_at(now):
        return "-"
    return datetime.fromtimestamp(user_.locked_until, UTC).isoformat(timespec="seconds")


@user.command("list")
@_REDIS_URL
def user_list(redis_url: str | None) -> None:
    """List users: role, bank or exporter, checker, disabled, locked until, failed attempts."""
    store = _user_store(redis_url)
    now = store.now()
    click.echo(
        f"{'USERNAME':<20}  {'ROLE':<8}  {'BANK/EXPORTER':<18}  {'CHECKER':<7}  "
        f"{'DISABLED':<8}  {'LOCKED UNTIL (UTC)':<25}  {'FAILED':<6}  SOURCE"
    )
    for u in store.list():
        click.echo(
            f"{u.username:<20}  {u.role:<8}  {u.subject:<18}  {'yes' if u.checker else 'no':<7}  "
            f"{'yes' if u.disabled else 'no':<8}  {_locked_text(u, now):<25}  "
            f"{u.failed_attempts:<6}  {u.source}"
        )


def _user_change(action: str, username: str, redis_url: str | None) -> None:
    store = _user_store(redis_url)
    name = _username(username)
    try:
        if action == "disable":
            store.set_disabled(name, True)
        elif action == "enable":
            store.set_disabled(name, False)
        else:
            store.unlock(name)
    except users.UserError as exc:
        fail(str(exc))
    click.echo(f"{action}d {name}" if action != "unlock" else f"unlocked {name}")


@user.command("disable")
@click.argument("username")
@_REDIS_URL
def user_disable(username: str, redis_url: str | None) -> None:
    """Disable USERNAME: no login, and its open sessions end at their next request."""
    _user_change("disable", username, redis_url)


@user.command("enable")
@click.argument("username")
@_REDIS_URL
def user_enable(username: str, redis_url: str | None) -> None:
    """Enable USERNAME again."""
    _user_change("enable", username, redis_url)


@user.command("unlock")
@click.argument("username")
@_REDIS_URL
def user_unlock(username: str, redis_url: str | None) -> None:
    """Lift USERNAME's lockout (after too many wrong passwords) and reset its count."""
    _user_change("unlock", username, redis_url)


@user.command("passwd")
@click.argument("username")
@_PASSWORD_STDIN
@_REDIS_URL
def user_passwd(username: str, password_stdin: bool, redis_url: str | None) -> None:
    """Set a new password for USERNAME; its open sessions end."""
    store = _user_store(redis_url)
    name = _username(username)
    if store.get(name) is None:
        fail(f"USERNAME: no user {name}")
    try:
        store.set_password(name, _read_password(password_stdin))
    except users.UserError as exc:
        fail(str(exc))
    click.echo(f"password of {name} changed")


@user.command("hash")
@_PASSWORD_STDIN
def user_hash(password_stdin: bool) -> None:
    """Print the argon2id hash of a password, for a reference file's users section."""
    from argon2 import PasswordHasher

    click.echo(PasswordHasher().hash(_read_password(password_stdin)))


# Feed imports live in their own modules, registered here.
from web.customs_cli import customs  # noqa: E402

main.add_command(customs)

from web.whitelist_cli import whitelist  # noqa: E402

main.add_command(whitelist)

from web.insurer_sim_cli import insurer_sim  # noqa: E402

main.add_command(insurer_sim)

from web.webhook_cli import webhook  # noqa: E402

main.add_command(webhook)

if __name__ == "__main__":
    main()
