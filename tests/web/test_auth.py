"""The page sign-in: login, logout, lockout, roles, CSRF, safe redirects, session cookies."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import Clock, demo_text
from tests.web.conftest import EAGER, auth, deal_body
from web import create_app
from web.auth.session import fresh_login_required, role_required
from workflow.reference import (
    ReferenceData,
    ReferenceFileError,
    parse_reference_json,
    store_reference,
)
from workflow.settings import SettingsError, load_settings
from workflow.users import DEMO_PASSWORD, LOGIN_ATTEMPTS

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
STRONG_KEY = "k" * 40


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, html
    return found.group(1)


def post_login(client: FlaskClient, username: str, password: str = DEMO_PASSWORD,
               next_: str | None = None, token: bool = True):
    page = client.get("/login")
    data = {"username": username, "password": password}
    if token:
        data["csrf_token"] = csrf_of(page.get_data(as_text=True))
    url = "/login" + (f"?next={quote(next_, safe='')}" if next_ is not None else "")
    return client.post(url, data=data)


def body_without_tokens(rv: Any, username: str) -> str:
    """The page less its CSRF token and the username it echoes back into the form."""
    return CSRF_RE.sub("", rv.get_data(as_text=True)).replace(f'value="{username}"', "")


@pytest.fixture
def users_clock(app: Flask, clock: Clock) -> Clock:
    app.extensions["xinbao_users"].clock = clock
    return clock


@pytest.fixture
def fresh_app(app: Flask, users_clock: Clock) -> Flask:
    """The app with a page that needs a fresh login, as approve and decline will."""

    @role_required("officer")
    @fresh_login_required
    def sensitive() -> str:
        return "done"

    app.add_url_rule("/bank/sensitive-test", "sensitive_test", sensitive)
    return app


def test_login_page_is_a_plain_form_with_labels_and_a_csrf_token(client):
    rv = client.get("/login")
    assert rv.status_code == 200 and rv.mimetype == "text/html"
    html = rv.get_data(as_text=True)
    assert '<label for="username">' in html and '<label for="password">' in html
    assert csrf_of(html)
    assert "<script" not in html
    # Nothing is loaded from another site.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert client.get("/static/xinbao.css").status_code == 200


def test_officer_lands_on_the_bank_desk(client, users_clock):
    rv = post_login(client, "boc-checker")
    assert rv.status_code == 302 and rv.headers["Location"] == "/bank/"
    page = client.get("/bank/").get_data(as_text=True)
    assert "boc-checker" in page and "Bank of China, Ningbo Branch" in page
    assert "officer and checker" in page
    assert client.get("/").headers["Location"] == "/bank/"


def test_exporter_lands_on_the_portal(client, users_clock):
    rv = post_login(client, "haixin")
    assert rv.status_code == 302 and rv.headers["Location"] == "/exporter/"
    page = client.get("/exporter/").get_data(as_text=True)
    assert "Ningbo Haixin Trading Co., Ltd." in page


def test_unknown_user_and_wrong_password_get_the_same_answer(client, users_clock):
    wrong = post_login(client, "boc-officer", "not the password")
    unknown = post_login(client, "no-such-user", "not the password")
    assert wrong.status_code == unknown.status_code == 200
    assert body_without_tokens(wrong, "boc-officer") == body_without_tokens(
        unknown, "no-such-user"
    )
    # The sign-in page speaks Chinese to a browser that asks for no other language.
    assert "用户名或密码错误" in wrong.get_data(as_text=True)
    assert client.get("/bank/").status_code == 302


def test_lockout_after_five_wrong_passwords_answers_alike_and_runs_out(
    client, users_clock, app
):
    for _ in range(LOGIN_ATTEMPTS):
        post_login(client, "icbc-officer", "not the password")
    locked = post_login(client, "icbc-officer")
    unknown = post_login(client, "no-such-user", "not the password")
    assert locked.status_code == 200
    assert body_without_tokens(locked, "icbc-officer") == body_without_tokens(
        unknown, "no-such-user"
    )
    assert app.extensions["xinbao_users"].get("icbc-officer").locked_until > 0
    users_clock.advance(seconds=app.extensions["xinbao_settings"].lockout_seconds + 1)
    assert post_login(client, "icbc-officer").status_code == 302


def test_disabled_user_is_refused_and_signed_out(client, users_clock, app):
    assert post_login(client, "ccb-officer").status_code == 302
    assert client.get("/bank/").status_code == 200
    app.extensions["xinbao_users"].set_disabled("ccb-officer", True)
    assert client.get("/bank/").status_code == 302
    refused = post_login(client, "ccb-officer")
    assert refused.status_code == 200
    assert "用户名或密码错误" in refused.get_data(as_text=True)


def test_login_without_csrf_token_is_400(client, users_clock):
    rv = post_login(client, "boc-officer", token=False)
    assert rv.status_code == 400 and rv.mimetype == "text/html"
    assert "此表单已过期" in rv.get_data(as_text=True)
    assert client.get("/bank/").status_code == 302


def test_logout_needs_the_csrf_token_and_works(client, users_clock):
    post_login(client, "boc-officer")
    page = client.get("/bank/").get_data(as_text=True)
    assert client.post("/logout").status_code == 400
    assert client.get("/bank/").status_code == 200  # still signed in
    assert client.get("/logout").status_code == 405
    rv = client.post("/logout", data={"csrf_token": csrf_of(page)})
    assert rv.status_code == 302 and rv.headers["Location"] == "/login"
    assert client.get("/bank/").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_no_redirect_off_the_site_after_login(client, users_clock, target):
    rv = post_login(client, "boc-officer", next_=target)
    assert rv.status_code == 302 and rv.headers["Location"] == "/bank/"


def test_a_local_next_is_followed(client, users_clock):
    assert client.get("/bank/?page=2").headers["Location"] == "/login?next=/bank/?page%3D2"
    rv = post_login(client, "boc-officer", next_="/bank/?page=2")
    assert rv.headers["Location"] == "/bank/?page=2"


def test_anonymous_is_sent_to_the_login_page(client):
    for path in ("/bank/", "/exporter/"):
        rv = client.get(path)
        assert rv.status_code == 302
        assert rv.headers["Location"] == f"/login?next={path}"


def test_each_role_is_refused_the_others_pages(client, users_clock):
    post_login(client, "haixin")
    rv = client.get("/bank/")
    assert rv.status_code == 403 and rv.mimetype == "text/html"
    assert "不允许访问" in rv.get_data(as_text=True)  # an exporter reads Chinese
    other = client.application.test_client()
    post_login(other, "boc-officer")
    assert other.get("/exporter/").status_code == 403


def test_unknown_page_is_an_html_404_while_the_api_keeps_json(client):
    rv = client.get("/no/such/page")
    assert rv.status_code == 404 and rv.mimetype == "text/html"
    assert "页面不存在" in rv.get_data(as_text=True)
    assert "Page not found" in client.get(
        "/no/such/page", headers={"Accept-Language": "en-GB,en;q=0.8"}
    ).get_data(as_text=True)
    assert client.get("/api/v1/nothing").is_json


def test_session_cookie_flags(client, users_clock):
    rv = post_login(client, "boc-officer")
    cookie = rv.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session, renewed by each request
    assert "Secure" not in cookie
    again = client.get("/bank/")
    assert "Expires=" in again.headers.get("Set-Cookie", "")


def _app(fake_redis: Any, reference: ReferenceData, **env: str) -> Flask:
    store_reference(fake_redis, reference)
    app = create_app(load_settings(env), redis_client=fake_redis, celery=dict(EAGER))
    app.config["TESTING"] = True
    return app


def test_session_cookie_is_secure_in_production(fake_redis, demo_reference):
    app = _app(fake_redis, demo_reference, XINBAO_ENV="production", SECRET_KEY=STRONG_KEY)
    rv = post_login(app.test_client(), "boc-officer")
    assert rv.status_code == 302
    assert "Secure" in rv.headers["Set-Cookie"]


def test_production_refuses_the_development_secret_key(fake_redis, demo_reference):
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        _app(fake_redis, demo_reference, XINBAO_ENV="production", SECRET_KEY="")


def test_session_ends_after_inactivity(fake_redis, demo_reference):
    app = _app(fake_redis, demo_reference, XINBAO_SESSION_IDLE_SECONDS="1")
    client = app.test_client()
    post_login(client, "boc-officer")
    assert client.get("/bank/").status_code == 200
    time.sleep(2.2)
    assert client.get("/bank/").status_code == 302


def test_fresh_login_is_asked_again_after_a_while(fresh_app, users_clock):
    client = fresh_app.test_client()
    post_login(client, "boc-officer")
    assert client.get("/bank/sensitive-test").get_data(as_text=True) == "done"
    users_clock.advance(seconds=fresh_app.extensions["xinbao_settings"].fresh_login_seconds + 1)
    rv = client.get("/bank/sensitive-test")
    assert rv.status_code == 302
    assert rv.headers["Location"] == "/reauthenticate?next=/bank/sensitive-test"
    page = client.get(rv.headers["Location"]).get_data(as_text=True)
    wrong = client.post(rv.headers["Location"],
                        data={"csrf_token": csrf_of(page), "password": "not the password"})
    assert wrong.status_code == 200 and "Wrong password" in wrong.get_data(as_text=True)
    ok = client.post(rv.headers["Location"],
                     data={"csrf_token": csrf_of(page), "password": DEMO_PASSWORD})
    assert ok.status_code == 302 and ok.headers["Location"] == "/bank/sensitive-test"
    assert client.get("/bank/sensitive-test").get_data(as_text=True) == "done"


def test_api_still_takes_bearer_tokens_without_csrf(client, users_clock):
    # Signed in to the pages too: the API neither needs a CSRF token nor accepts the cookie.
    post_login(client, "haixin")
    rv = client.post("/api/v1/deals", json=deal_body(), headers=auth("haixin"))
    assert rv.status_code == 202, rv.get_json()
    assert client.get("/api/v1/deals").status_code == 401
    assert client.get("/api/v1/deals", headers=auth("haixin")).status_code == 200


def test_session_cookie_captured_before_logout_is_dead_after_it(client, users_clock):
    """Signing out ends the session on the server: a copy of its cookie (a shared PC, a proxy
    log) is worth nothing afterwards."""
    post_login(client, "boc-officer")
    page = client.get("/bank/").get_data(as_text=True)
    stolen = client.get_cookie("session").value
    assert client.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert client.get("/bank/").status_code == 302
    client.set_cookie("session", stolen)
    assert client.get("/bank/").status_code == 302, "old cookie still signed in after logout"


def test_signed_in_page_while_redis_is_down_is_the_503_page(
    app, client, users_clock, fake_redis, monkeypatch
):
    """With the store down a signed-in page is the 503 page with Retry-After, not a bare
    500 from a second failure while rendering."""
    post_login(client, "boc-officer")
    app.config["TESTING"] = False

    def down(*_: Any, **__: Any) -> Any:
        raise RedisConnectionError("redis went away")

    monkeypatch.setattr(fake_redis, "hgetall", down)
    rv = client.get("/bank/")
    assert rv.status_code == 503 and rv.mimetype == "text/html"
    assert rv.headers.get("Retry-After")


def _demo_with_hash(username: str, password_hash: str) -> str:
    data = json.loads(demo_text())
    for user in data["users"]:
        if user["username"] == username:
            user["password_hash"] = password_hash
    return json.dumps(data)


def test_users_file_refuses_weak_argon2_parameters():
    """A file's hashes use the server's own argon2id parameters: never weaker (cheap to crack
    offline), never other (a refusal would take another time than for an unknown name, and
    the login rehash would be undone by every reload)."""
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=4, salt_len=8).hash(
        DEMO_PASSWORD
    )
    with pytest.raises(ReferenceFileError, match="password_hash"):
        parse_reference_json(_demo_with_hash("boc-officer", weak))
    other = PasswordHasher(time_cost=4).hash(DEMO_PASSWORD)
    with pytest.raises(ReferenceFileError, match="password_hash"):
        parse_reference_json(_demo_with_hash("boc-officer", other))


def test_reloading_an_unchanged_users_file_keeps_the_users_sessions(
    client, users_clock, fake_redis, demo_reference
):
    """Reloading the same file changes no user and ends no session."""
    same_file = demo_reference
    store_reference(fake_redis, same_file)
    assert post_login(client, "boc-officer").status_code == 302
    assert client.get("/bank/").status_code == 200
    store_reference(fake_redis, same_file)
    assert client.get("/bank/").status_code == 200, "an unchanged reload ended the session"


@pytest.mark.parametrize(
    ("username", "page", "section", "gone"),
    [
        ("boc-officer", "/bank/", "banks", "BOC-NB"),
        ("haixin", "/exporter/", "exporters", "91330200MA2AB1C2DJ"),
    ],
)
def test_user_of_a_bank_or_exporter_removed_by_a_reload_loses_its_pages(
    client, users_clock, fake_redis, demo_reference, username, page, section, gone
):
    """A user whose bank or exporter a reload removed is signed out and cannot sign in."""
    post_login(client, username)
    assert client.get(page).status_code == 200
    key = "bank_id" if section == "banks" else "uscc"
    kept = [r for r in getattr(demo_reference, section) if getattr(r, key) != gone]
    reload = dataclasses.replace(
        demo_reference, **{section: kept}, sections=frozenset({section}), tokens=[], users=[]
    )
    try:
        store_reference(fake_redis, reload)
    except ReferenceFileError:
        return  # refused: the users still bound to it keep it alive
    assert client.get(page).status_code in (302, 403)
    fresh = client.application.test_client()
    refused = post_login(fresh, username)
    assert refused.status_code == 200 and "Location" not in refused.headers


def test_pages_and_the_api_carry_security_headers(client):
    page = client.get("/login")
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy  # no page runs a script
    assert page.headers["X-Frame-Options"] == "DENY"
    for rv in (page, client.get("/api/v1/deals")):
        assert rv.headers["X-Content-Type-Options"] == "nosniff"
        assert rv.headers["Referrer-Policy"] == "same-origin"
