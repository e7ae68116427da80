"""``xinbao user add|list|disable|enable|unlock|passwd|hash`` and the production rule for demo
users."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from tests.conftest import DEMO_FILE
from tests.web.conftest import HAIXIN
from web import cli
from workflow import keys
from workflow.users import DEMO_PASSWORD, LOGIN_ATTEMPTS, Users

PRODUCTION = {"XINBAO_ENV": "production"}
PASSWORD = "a long enough password"


def run(*args: str, stdin: str | None = None, env: dict | None = None):
    return CliRunner().invoke(cli.main, list(args), input=stdin, env=env)


def rows(fake_redis) -> dict[str, list[str]]:
    """username -> the columns `xinbao user list` prints for it."""
    result = run("user", "list")
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}


@pytest.fixture
def loaded(client, into_fake_redis, fake_redis):
    """The demo data loaded (by the app fixture) and the CLI pointed at the same fakeredis."""
    return fake_redis


def test_add_an_officer_from_stdin_and_list_it(loaded):
    result = run("user", "add", "wang", "--bank", "BOC-NB", "--checker", "--password-stdin",
                 stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "added officer + checker wang of BOC-NB" in result.stdout
    listed = rows(loaded)
    assert listed["wang"][:5] == ["wang", "officer", "BOC-NB", "yes", "no"]
    assert listed["wang"][-1] == "cli"
    assert "$argon2" not in run("user", "list").output
    assert PASSWORD not in str(loaded.hgetall(keys.user("wang")))
    assert Users(loaded).authenticate("wang", PASSWORD).ok


def test_add_an_exporter_user_with_the_prompt_asked_twice(loaded):
    result = run("user", "add", "hx2", "--exporter", HAIXIN, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert rows(loaded)["hx2"][:4] == ["hx2", "exporter", HAIXIN, "no"]
    mismatch = run("user", "add", "hx3", "--exporter", HAIXIN,
                   stdin=f"{PASSWORD}\nsomething else entirely\n")
    assert mismatch.exit_code != 0
    assert "hx3" not in rows(loaded)


def test_the_password_is_never_an_argument(loaded):
    result = run("user", "add", "wang", "--bank", "BOC-NB", PASSWORD)
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wang", "--bank", "NOPE"], "--bank: no bank NOPE in the reference data"),
        (["wang", "--exporter", "91330200MA2AB1C2DX"], "--exporter: not a valid"),
        (["wang"], "give exactly one of --bank BANK_ID or --exporter USCC"),
        (["wang", "--exporter", HAIXIN, "--checker"], "--checker: only an officer"),
        (["bad name", "--bank", "BOC-NB"], "USERNAME: use 2-64"),
        (["boc-officer", "--bank", "BOC-NB"], "USERNAME: boc-officer already exists"),
    ],
)
def test_add_refuses_with_the_field_named(loaded, args, message):
    result = run("user", "add", *args, "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 1
    assert message in result.stderr


def test_add_refuses_a_short_password(loaded):
    result = run("user", "add", "wang", "--bank", "BOC-NB", "--password-stdin", stdin="short\n")
    assert result.exit_code == 1 and "password: must be at least 12" in result.stderr


def test_disable_enable_and_unlock(loaded):
    users = Users(loaded)
    assert run("user", "disable", "haixin").exit_code == 0
    assert rows(loaded)["haixin"][4] == "yes"
    assert not users.authenticate("haixin", DEMO_PASSWORD).ok
    assert run("user", "enable", "haixin").exit_code == 0
    assert users.authenticate("haixin", DEMO_PASSWORD).ok
    for _ in range(LOGIN_ATTEMPTS):
        users.authenticate("haixin", "not the password")
    locked = rows(loaded)["haixin"]
    assert locked[5].endswith("+00:00") and locked[6] == str(LOGIN_ATTEMPTS)
    assert run("user", "unlock", "haixin").stdout.strip() == "unlocked haixin"
    assert rows(loaded)["haixin"][5:7] == ["-", "0"]
    assert users.authenticate("haixin", DEMO_PASSWORD).ok
    missing = run("user", "disable", "nobody")
    assert missing.exit_code == 1 and "no user nobody" in missing.stderr


def test_passwd_sets_a_new_password(loaded):
    result = run("user", "passwd", "haixin", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert Users(loaded).authenticate("haixin", PASSWORD).ok


def test_hash_prints_an_argon2id_hash_for_a_file():
    result = run("user", "hash", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0
    value = result.stdout.strip()
    assert value.startswith("$argon2id$") and PasswordHasher().verify(value, PASSWORD)


def test_production_refuses_the_demo_password_and_demo_users(loaded):
    result = run("user", "add", "wang", "--bank", "BOC-NB", "--password-stdin",
                 stdin=DEMO_PASSWORD + "\n", env=PRODUCTION)
    assert result.exit_code == 1 and "demo password is public" in result.stderr
    load = run("load", str(DEMO_FILE), env=PRODUCTION)
    assert load.exit_code == 1
    assert "users[0] (username=boc-officer).password_hash: the demo password" in load.stderr
    assert run("load", str(DEMO_FILE), "--allow-demo-tokens", env=PRODUCTION).exit_code == 0


def test_demo_load_says_it_loaded_the_users(into_fake_redis, fake_redis):
    result = run("load", str(DEMO_FILE))
    assert result.exit_code == 0, result.output
    assert "9 users" in result.stdout
    assert rows(fake_redis)["boc-officer"][-1] == "file:demo.json"
