"""Users: argon2 hashing, lockout after 5 wrong passwords, one answer for every refusal, and
the reference file's users section."""

from __future__ import annotations

import json
import threading

import pytest
from argon2 import PasswordHasher, extract_parameters

from tests.conftest import DEMO_NOW, HAIXIN, Clock, demo_text
from workflow import keys
from workflow.reference import ReferenceFileError, parse_reference_json, store_reference
from workflow.user_files import file_user_problems, is_demo_hash
from workflow.users import (
    DEMO_PASSWORD,
    LOGIN_ATTEMPTS,
    UserError,
    Users,
    UserSpec,
    hash_problem,
)

# Cheap parameters: these tests check the logic, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
# What a reference file must hold: a hash made with the server's own parameters.
FILE_HASH = PasswordHasher().hash("long enough password 1")
PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> Clock:
    return Clock(DEMO_NOW)


@pytest.fixture
def store(any_redis, demo_reference, clock) -> Users:
    store_reference(any_redis, demo_reference)
    users = Users(any_redis, lockout_seconds=900, clock=clock, hasher=FAST)
    users.add(UserSpec("li", bank_id="BOC-NB", checker=True), PASSWORD)
    users.add(UserSpec("hx", exporter_uscc=HAIXIN), PASSWORD)
    return users


def test_password_is_stored_only_as_an_argon2id_hash(store, any_redis):
    raw = any_redis.hgetall(keys.user("li"))
    assert raw["password"].startswith("$argon2id$")
    assert PASSWORD not in json.dumps(raw)
    assert store.authenticate("li", PASSWORD).ok
    user = store.get("li")
    assert (user.role, user.bank_id, user.checker) == ("officer", "BOC-NB", True)
    assert user.source == "cli"
    assert "password" not in user.__dict__
    assert any_redis.sismember(keys.users(), "li")


def test_username_is_case_and_space_insensitive_at_login(store):
    assert store.authenticate("  LI ", PASSWORD).ok


def test_wrong_password_unknown_user_and_odd_names_all_refused(store):
    assert store.authenticate("li", "wrong password!").reason == "wrong_password"
    assert store.authenticate("nobody", PASSWORD).reason == "unknown"
    assert store.authenticate("bad:name", PASSWORD).reason == "unknown"
    assert store.authenticate("li", "").reason == "wrong_password"
    assert not store.authenticate("li", "x" * 5000).ok


def test_an_unknown_user_costs_a_hash_check_like_a_real_one(any_redis, demo_reference):
    # Counted, not timed (timings belong in benchmarks): every refusal verifies one hash made
    # with the same argon2 parameters as a real user's, so an unknown name costs the same.
    store_reference(any_redis, demo_reference)
    users = Users(any_redis)  # the real parameters, as in production
    users.add(UserSpec("li", bank_id="BOC-NB"), PASSWORD)
    checked: list[object] = []
    real_verify = users._verify

    def verify(stored: str, password: str) -> bool:
        checked.append(extract_parameters(stored))
        return real_verify(stored, password)

    users._verify = verify
    for name in ("li", "nobody", "bad name!", "li"):
        users.authenticate(name, "wrong password!")
    users.authenticate("nobody", "x" * 10_000)  # too long: refused before any lookup
    assert len(checked) == 5
    assert len(set(map(repr, checked))) == 1, checked


def test_five_wrong_passwords_lock_the_account_and_it_runs_out(store, clock):
    for attempt in range(LOGIN_ATTEMPTS - 1):
        result = store.authenticate("li", "wrong password!")
        assert result.reason == "wrong_password" and result.locked_until == 0, attempt
    assert store.get("li").failed_attempts == LOGIN_ATTEMPTS - 1
    fifth = store.authenticate("li", "wrong password!")
    assert fifth.locked_until == store.now() + 900
    # Locked: even the right password is refused, and nothing more is counted.
    assert store.authenticate("li", PASSWORD).reason == "locked"
    assert store.get("li").locked_at(store.now())
    clock.advance(seconds=899)
    assert not store.authenticate("li", PASSWORD).ok
    clock.advance(seconds=2)
    assert store.authenticate("li", PASSWORD).ok
    assert store.get("li").failed_attempts == 0


def test_a_success_resets_the_count(store):
    for _ in range(LOGIN_ATTEMPTS - 1):
        store.authenticate("li", "wrong password!")
    assert store.authenticate("li", PASSWORD).ok
    for _ in range(LOGIN_ATTEMPTS - 1):
        store.authenticate("li", "wrong password!")
    assert store.authenticate("li", PASSWORD).ok


def test_unlock_lifts_the_lock(store):
    for _ in range(LOGIN_ATTEMPTS):
        store.authenticate("li", "wrong password!")
    assert store.authenticate("li", PASSWORD).reason == "locked"
    store.unlock("li")
    assert store.get("li").failed_attempts == 0
    assert store.authenticate("li", PASSWORD).ok


def test_parallel_guesses_get_no_more_than_the_allowance(real_redis, demo_reference, clock):
    store_reference(real_redis, demo_reference)
    users = Users(real_redis, clock=clock, hasher=FAST)
    users.add(UserSpec("li", bank_id="BOC-NB"), PASSWORD)
    checked = []
    real_verify = users._verify

    def counting(stored: str, password: str) -> bool:
        if password.startswith("guess") and stored != users._dummy_hash:
            checked.append(password)
        return real_verify(stored, password)

    users._verify = counting  # type: ignore[method-assign]
    threads = [
        threading.Thread(target=users.authenticate, args=("li", f"guess-{i}-xxxxxxx"))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) <= LOGIN_ATTEMPTS
    assert users.get("li").locked_at(users.now())


def test_disabled_user_is_refused_and_its_sessions_end(store):
    before = store.open_session(store.get("li"))
    assert store.by_session_id(before) is not None
    store.set_disabled("li", True)
    assert store.authenticate("li", PASSWORD).reason == "disabled"
    assert store.by_session_id(before) is None
    store.set_disabled("li", False)
    assert store.authenticate("li", PASSWORD).ok
    # The old session does not come back with the user.
    assert store.by_session_id(before) is None
    assert store.by_session_id(store.open_session(store.get("li"))) is not None


def test_a_closed_session_is_over_and_others_go_on(store):
    user = store.get("li")
    phone, laptop = store.open_session(user), store.open_session(user)
    store.close_session(phone)
    assert store.by_session_id(phone) is None
    assert store.by_session_id(laptop) is not None
    # A session id without its server-side record (forged, or from before) is nothing.
    assert store.by_session_id(user.session_id) is None
    assert store.by_session_id(user.session_id + ":made-up") is None


def test_new_password_ends_older_sessions(store):
    before = store.open_session(store.get("li"))
    store.set_password("li", "another long password")
    assert store.by_session_id(before) is None
    assert not store.authenticate("li", PASSWORD).ok
    assert store.authenticate("li", "another long password").ok


def test_outdated_hash_parameters_are_rehashed_at_login(store, any_redis):
    stronger = Users(any_redis, hasher=PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    old = any_redis.hget(keys.user("hx"), "password")
    assert stronger.authenticate("hx", PASSWORD).ok
    new = any_redis.hget(keys.user("hx"), "password")
    assert new != old and "t=2" in new
    assert stronger.authenticate("hx", PASSWORD).ok


def test_add_refuses_bad_input(store):
    with pytest.raises(UserError, match="username"):
        store.add(UserSpec("li", bank_id="BOC-NB"), PASSWORD)
    with pytest.raises(UserError, match="username"):
        store.add(UserSpec("Bad Name", bank_id="BOC-NB"), PASSWORD)
    with pytest.raises(UserError, match="password"):
        store.add(UserSpec("wang", bank_id="BOC-NB"), "short")
    with pytest.raises(UserError, match="checker"):
        store.add(UserSpec("wang", exporter_uscc=HAIXIN, checker=True), PASSWORD)
    with pytest.raises(UserError, match="username"):
        store.unlock("nobody")
    # No half user was left behind.
    assert store.get("nobody") is None and store.get("wang") is None


# --- the reference file ------------------------------------------------------------------


def _with_users(users: list[dict]) -> str:
    document = json.loads(demo_text())
    document["users"] = users
    return json.dumps(document)


def test_demo_users_load_and_log_in(any_redis, demo_reference, clock):
    store_reference(any_redis, demo_reference)
    users = Users(any_redis, clock=clock)
    listed = {u.username: u for u in users.list()}
    assert {u.bank_id for u in listed.values() if u.role == "officer"} == {
        "BOC-NB",
        "ICBC-NB",
        "CCB-NB",
    }
    for bank in ("BOC-NB", "ICBC-NB", "CCB-NB"):
        officers = [u for u in listed.values() if u.bank_id == bank]
        assert len(officers) >= 2 and any(u.checker for u in officers)
    exporters = {u.exporter_uscc for u in listed.values() if u.role == "exporter"}
    assert exporters == {e.uscc for e in demo_reference.exporters}
    assert all(u.source == "file" for u in listed.values())
    assert users.authenticate("boc-officer", DEMO_PASSWORD).ok
    assert users.authenticate("haixin", DEMO_PASSWORD).ok


def test_demo_users_are_refused_in_production(demo_reference):
    problems = file_user_problems(demo_reference.users, refuse_demo=True)
    assert len(problems) == len(demo_reference.users)
    assert "demo password" in problems[0] and "password_hash" in problems[0]
    assert file_user_problems(demo_reference.users, refuse_demo=False) == []
    assert not is_demo_hash(PasswordHasher().hash("a real password 123"))


def test_a_plain_password_in_the_file_is_refused():
    text = _with_users([{"username": "x1", "bank_id": "BOC-NB", "password": "secret-123456"}])
    with pytest.raises(ReferenceFileError) as err:
        parse_reference_json(text)
    joined = " ".join(err.value.problems)
    assert "users[0] (username=x1).password: a plain password is refused" in joined
    assert "password_hash" in joined


@pytest.mark.parametrize(
    "value",
    [
        "secret",
        "$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=9999999,t=3,p=4$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$nonsense",
    ],
)
def test_only_sensible_argon2id_hashes_are_taken(value):
    assert hash_problem(value)


def test_file_users_replace_file_users_and_keep_operator_state(any_redis, demo_reference, clock):
    store_reference(any_redis, demo_reference)
    users = Users(any_redis, clock=clock, hasher=FAST)
    users.add(UserSpec("cli-user", bank_id="BOC-NB"), PASSWORD)
    users.set_disabled("nanhai", True)
    for _ in range(2):
        users.authenticate("haixin", "wrong password!")
    epoch = users.get("haixin").epoch
    # Reloading the file keeps the disabled flag, the failed count and the sessions.
    store_reference(any_redis, parse_reference_json(demo_text()))
    assert users.get("nanhai").disabled
    assert users.get("haixin").failed_attempts == 2
    assert users.get("haixin").epoch == epoch
    # A file without haixin removes haixin; the CLI user is untouched.
    document = json.loads(demo_text())
    document["users"] = [u for u in document["users"] if u["username"] != "haixin"]
    store_reference(any_redis, parse_reference_json(json.dumps(document)))
    assert users.get("haixin") is None
    assert not any_redis.sismember(keys.users(), "haixin")
    assert users.get("cli-user") is not None
    # A file naming the CLI user is refused whole.
    document["users"].append(
        {"username": "cli-user", "bank_id": "BOC-NB", "password_hash": FILE_HASH}
    )
    with pytest.raises(ReferenceFileError, match="already added by xinbao user add"):
        store_reference(any_redis, parse_reference_json(json.dumps(document)))
    assert users.get("cli-user").source == "cli"


def test_file_user_of_an_unknown_bank_is_refused(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    text = json.dumps(
        {"users": [{"username": "x1", "bank_id": "NOPE", "password_hash": FILE_HASH}]}
    )
    with pytest.raises(ReferenceFileError, match=r"users\[0\] \(username=x1\)\.bank_id: no bank"):
        store_reference(any_redis, parse_reference_json(text))
