"""Pages in Chinese and English: who gets which, the switch, the catalogue's completeness, and
money and times per language."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

from tests.conftest import Clock
from tests.web.conftest import auth, dongfang_body
from tests.web.test_auth import csrf_of, post_login
from tests.web.test_desk import page, signed_in
from web import i18n
from web.formatting import money, percent, shanghai, time_left
from web.words import (
    CHECK_WORDS,
    EVENT_WORDS,
    check_words,
    event_words,
    reason_words,
    state_words,
)
from workflow.checks import INVOICE_CHECKS, LIMIT_ROOM_CHECK, WHITELIST_CHECK
from workflow.reasons import Reason, describe
from workflow.reference import store_reference
from workflow.states import State
from workflow.users import UserError

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "web" / "translations" / "zh" / "LC_MESSAGES"
# As `make translations` extracts them (the Makefile's -k options).
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "lazy_gettext": None,
    "_l": None,
    "lazy_pgettext": ((1, "c"), 2),
}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
HTML_LANG = re.compile(r'<html lang="([^"]+)"')


@pytest.fixture
def users_clock(app: Flask, clock: Clock) -> Clock:
    app.extensions["xinbao_users"].clock = clock
    return clock


def lang_of(html: str) -> str:
    found = HTML_LANG.search(html)
    assert found, html[:200]
    return found.group(1)


def switch(client: FlaskClient, lang: str, html: str, next_: str | None = None):
    """Press the language switch of the page ``html`` (its CSRF token and its next)."""
    if next_ is None:
        found = re.search(r'name="next" value="([^"]*)"', html)
        assert found, html
        next_ = found.group(1).replace("&amp;", "&")
    return client.post(
        "/language", data={"csrf_token": csrf_of(html), "lang": lang, "next": next_}
    )


# --- who reads which language ----------------------------------------------------------------


def test_exporters_read_chinese_and_officers_english_by_default(app, users_clock):
    exporter = page(signed_in(app, "haixin"), "/exporter/")
    assert lang_of(exporter) == "zh-CN" and "出口商门户" in exporter
    assert "退出登录" in exporter
    officer = page(signed_in(app, "boc-officer"), "/bank/")
    assert lang_of(officer) == "en" and "Pending our decision" in officer
    assert "Sign out" in officer


def test_every_page_has_the_switch_and_it_needs_no_script(app, users_clock, client):
    for html in (
        page(client, "/login"),
        page(signed_in(app, "boc-officer"), "/bank/"),
        page(signed_in(app, "haixin"), "/exporter/"),
        page(client, "/no/such/page", 404),
    ):
        assert 'action="/language"' in html and 'name="lang"' in html
        assert "中文" in html and "English" in html and "<script" not in html


def test_switching_persists_across_requests_and_a_new_login(app, users_clock):
    client = signed_in(app, "boc-officer")
    html = page(client, "/bank/?show=all")
    rv = switch(client, "zh", html)
    assert rv.status_code == 303 and rv.headers["Location"] == "/bank/?show=all"
    cookie = rv.headers["Set-Cookie"]
    assert cookie.startswith(f"{i18n.COOKIE}=zh") and "Max-Age=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    for _ in range(2):
        zh = page(client, "/bank/")
        assert lang_of(zh) == "zh-CN" and "待本行审批" in zh
    assert app.extensions["xinbao_users"].get("boc-officer").language == "zh"
    # Another browser (no cookie): the choice saved on the user follows them.
    elsewhere = signed_in(app, "boc-officer")
    assert lang_of(page(elsewhere, "/bank/")) == "zh-CN"
    # And back to English.
    switch(elsewhere, "en", page(elsewhere, "/bank/"))
    assert lang_of(page(elsewhere, "/bank/")) == "en"
    assert lang_of(page(signed_in(app, "boc-officer"), "/bank/")) == "en"


def test_a_saved_choice_outlives_a_reference_reload(app, users_clock, fake_redis,
                                                    demo_reference):
    users = app.extensions["xinbao_users"]
    users.set_language("haixin", "en")
    store_reference(fake_redis, demo_reference)
    assert users.get("haixin").language == "en"
    assert lang_of(page(signed_in(app, "haixin"), "/exporter/")) == "en"
    with pytest.raises(UserError):
        users.set_language("haixin", "fr")


def test_a_language_picked_before_signing_in_is_kept(app, users_clock, client):
    rv = switch(client, "en", page(client, "/login"))
    assert rv.status_code == 303
    assert lang_of(page(client, "/login")) == "en"
    post_login(client, "haixin")
    assert lang_of(page(client, "/exporter/")) == "en"
    assert app.extensions["xinbao_users"].get("haixin").language == "en"


def test_the_sign_in_page_follows_the_cookie_else_accept_language_else_chinese(client):
    def lang(**headers: str) -> str:
        return lang_of(page(client, "/login") if not headers else
                       client.get("/login", headers=headers).get_data(as_text=True))

    assert lang() == "zh-CN"
    assert lang(**{"Accept-Language": "en-US,en;q=0.9"}) == "en"
    assert lang(**{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}) == "zh-CN"
    assert lang(**{"Accept-Language": "fr-FR,fr;q=0.9"}) == "zh-CN"
    assert lang(**{"Accept-Language": "fr;q=1.0,en;q=0.5"}) == "en"
    en = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Sign in" in en and "Username" in en
    zh = page(client, "/login")
    assert "登录" in zh and "用户名" in zh and "密码" in zh
    client.set_cookie(i18n.COOKIE, "en")
    assert lang(**{"Accept-Language": "zh-CN"}) == "en"  # the browser's choice wins
    client.set_cookie(i18n.COOKIE, "xx")
    assert lang(**{"Accept-Language": "en"}) == "en"  # a bad cookie is ignored


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_the_switch_never_redirects_off_the_site(client, target):
    rv = switch(client, "en", page(client, "/login"), next_=target)
    assert rv.status_code == 303 and rv.headers["Location"] == "/"


def test_the_switch_refuses_an_unknown_language_and_a_missing_token(client):
    html = page(client, "/login")
    assert switch(client, "fr", html).status_code == 400
    rv = client.post("/language", data={"lang": "en", "next": "/login"})
    assert rv.status_code == 400
    assert i18n.COOKIE not in rv.headers.get("Set-Cookie", "")
    assert client.get("/language").status_code == 405


def test_the_api_is_untouched_by_the_language(app, api, users_clock):
    deal = api.create()
    plain = api.get(deal["id"]).get_json()
    client = app.test_client()
    client.set_cookie(i18n.COOKIE, "zh")
    rv = client.get(f"/api/v1/deals/{deal['id']}",
                    headers={**auth("haixin"), "Accept-Language": "zh-CN"})
    assert rv.get_json() == plain
    assert plain["created_at"].endswith("+00:00")  # UTC in the API
    missing = client.get("/api/v1/deals/nope", headers=auth("haixin")).get_json()
    assert missing["error"]["message"].isascii()


def test_a_page_answering_a_post_switches_back_to_the_form_s_page(app, api, users_clock):
    deal = api.create()
    client = signed_in(app, "boc-officer")
    html = page(client, f"/bank/deals/{deal['id']}")
    assert f'name="next" value="/bank/deals/{deal["id"]}"' in html
    post = {"csrf_token": csrf_of(html), "approve": "1", "amount": "1e5", "annual_rate": "x"}
    here = f"http://localhost/bank/deals/{deal['id']}"
    refused = client.post(f"/bank/deals/{deal['id']}/decision", data=post,
                          headers={"Referer": here}).get_data(as_text=True)
    assert f'name="next" value="/bank/deals/{deal["id"]}"' in refused
    assert "Enter an amount greater than 0" in refused  # the rule, in the page's language
    elsewhere = client.post(f"/bank/deals/{deal['id']}/decision", data=post,
                            headers={"Referer": "https://evil.example/bank/"})
    assert 'name="next" value=""' in elsewhere.get_data(as_text=True)
    switch(client, "zh", html)
    refused = client.post(f"/bank/deals/{deal['id']}/decision", data=post,
                          headers={"Referer": here}).get_data(as_text=True)
    assert "请输入大于 0 的金额" in refused and "请以 0 到 1 之间的小数填写利率" in refused


# --- words on pages ------------------------------------------------------------------------


def test_a_zh_desk_page_shows_states_reasons_and_checks_in_chinese(app, api, users_clock):
    deal = api.create(dongfang_body(), who="dongfang")
    seen = api.get(deal["id"], "dongfang").get_json()
    officer = {"ICBC-NB": "icbc-officer", "CCB-NB": "ccb-officer"}[seen["offered_banks"][-1]]
    client = signed_in(app, officer)
    switch(client, "zh", page(client, "/bank/"))
    html = page(client, f"/bank/deals/{deal['id']}")
    assert lang_of(html) == "zh-CN"
    assert "出口商不在任何有效的统保名单内。" in html  # EXPORTER_NOT_WHITELISTED
    assert "EXPORTER_NOT_WHITELISTED" in html  # the code beside the words
    assert "待本行审批" in html and "待银行审批" in html  # status, and state in the timeline
    assert "推送至银行" in html and "信保系统（自动）" in html  # events and actors
    assert "出运日保单有效" in html and "✓ 通过" in html and "✗ 未通过" in html
    assert "审批决定" in html and "融资金额" in html  # the decision form's labels
    assert "EUR 100,000.00" in html
    queue = page(client, "/bank/")
    assert "待审批" in queue and "2 小时内到期" in queue and "剩余时间" in queue
    assert "申请 EUR 70,000.00" in queue


def test_every_state_reason_check_and_event_has_words_in_both_languages(app):
    names = {c.__name__ for c in INVOICE_CHECKS} | {LIMIT_ROOM_CHECK, WHITELIST_CHECK}
    assert names <= set(CHECK_WORDS)
    with app.test_request_context("/"):
        for lang in ("en", "zh"):
            with force_locale(lang):
                for state in State:
                    assert state_words(state) and state_words(state) != state.value
                for reason in Reason:
                    assert reason_words(reason) not in ("", reason.value)
                for name in names:
                    assert check_words(name) != name
                for event in EVENT_WORDS:
                    assert event_words(event) != event
        with force_locale("zh"):
            chinese = [state_words(s) for s in State] + [reason_words(r) for r in Reason]
            chinese += [check_words(n) for n in names] + [event_words(e) for e in EVENT_WORDS]
            missing = [w for w in chinese if not re.search(r"[\u4e00-\u9fff]", w)]
            assert not missing, f"no Chinese wording for: {missing}"
        with force_locale("en"):
            # The English on pages is the workflow's own description, word for word.
            for reason in Reason:
                assert reason_words(reason) == describe(reason)
    assert reason_words("NOT_A_CODE") == "NOT_A_CODE" and state_words("nowhere") == "nowhere"


# --- money and times -----------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_money_rates_and_times_per_language(app, lang):
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with app.test_request_context("/"), force_locale(lang):
        assert money("1234567.5", "USD") == "USD 1,234,567.50"
        assert money("0.005", "USD") == "USD 0.01"  # half up, exact: never a float
        assert money("12345678901.99", "EUR") == "EUR 12,345,678,901.99"
        assert money("1500000", "JPY") == "JPY 1,500,000"
        assert money("1234.5", "") == "1,234.50"
        assert money(None, "USD") == money("", "USD") == money("nan", "USD") == ""
        assert percent("0.90") == "90%" and percent("0.0420") == "4.20%"
        assert shanghai("2026-11-24T16:30:00+00:00") == "2026-11-25 00:30"
        assert shanghai("2026-11-24T16:30:00") == ""  # a naive time is no stored time
        left = time_left("2026-11-25T10:00:00+00:00", now)
        short = time_left("2026-11-24T11:05:00+00:00", now)
        passed = time_left("2026-11-24T08:00:00+00:00", now)
    if lang == "en":
        assert (left, short, passed) == ("1 d 1 h", "2 h 05 min", "passed")
    else:
        assert (left, short, passed) == ("1 天 1 小时", "2 小时 05 分", "已超时")


def test_a_zh_page_shows_shanghai_times_and_money(app, api, users_clock):
    deal = api.create()
    client = signed_in(app, "boc-officer")
    switch(client, "zh", page(client, "/bank/"))
    html = page(client, f"/bank/deals/{deal['id']}")
    assert "2026-11-24 17:00" in html  # 09:00 UTC on the demo morning
    assert "USD 100,000.00" in html and "USD 80,000.00" in html and "90%" in html
    assert "截止 " in page(client, "/bank/")


# --- the catalogue ---------------------------------------------------------------------------


def _zh_catalogue():
    with open(CATALOGUE / "messages.po", "rb") as f:
        return read_po(f)


def _extracted() -> dict[tuple[str | None, str], str]:
    """Every message in the code and templates, as `make translations` extracts them."""
    with open(ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[tuple[str | None, str], str] = {}
    for filename, _lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault((context, msgid), filename)
    return found


def test_every_message_has_a_chinese_translation():
    extracted = _extracted()
    assert len(extracted) > 150  # the extraction found the pages' text
    catalogue = _zh_catalogue()
    missing = []
    for (context, msgid), where in sorted(extracted.items(), key=lambda i: i[1]):
        entry = catalogue.get(msgid, context=context)
        strings = entry.string if entry is not None else None
        forms = strings if isinstance(strings, tuple) else (strings,)
        if entry is None or entry.fuzzy or not all(forms):
            missing.append(f"{where}: {msgid!r}" + (f" (context {context})" if context else ""))
    assert not missing, (
        "messages without a Chinese translation (run `make translations`, translate them in"
        f" {CATALOGUE / 'messages.po'}, run it again):\n" + "\n".join(missing)
    )


def test_translations_keep_the_placeholders():
    wrong = []
    for entry in _zh_catalogue():
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = sorted(PLACEHOLDER.findall(ids[0]))
        for text in strings:
            if sorted(PLACEHOLDER.findall(text)) != wanted:
                wrong.append(f"{ids[0]!r} -> {text!r}")
            tags = sorted(re.findall(r"</?\w+", ids[0]))
            if text and sorted(re.findall(r"</?\w+", text)) != tags:
                wrong.append(f"{ids[0]!r} -> {text!r} (HTML tags differ)")
    assert not wrong, "\n".join(wrong)


def test_the_compiled_catalogue_is_up_to_date():
    """The .mo is committed (a fresh checkout runs without a compile step): it must say what
    its .po says. `make translations` compiles it."""
    compiled = io.BytesIO()
    write_mo(compiled, _zh_catalogue())
    compiled.seek(0)
    with open(CATALOGUE / "messages.mo", "rb") as f:
        committed = read_mo(f)

    def table(catalogue) -> dict:
        return {(m.context, m.id): m.string for m in catalogue if m.id}

    assert table(read_mo(compiled)) == table(committed), (
        "web/translations/zh/LC_MESSAGES/messages.mo is stale: run `make translations`"
    )


def test_the_app_loads_the_chinese_catalogue(app: Flask):
    with app.test_request_context("/"), force_locale("zh"):
        from flask_babel import gettext

        assert gettext("Sign in") == "登录"
        assert gettext("Deal %(id)s approved.", id="D1") == "已批准业务 D1。"
