"""`xinbao webhook add|list|remove|deliveries`: output, refusals, the secret shown only once."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from web import cli, webhook_cli
from workflow import keys


@pytest.fixture
def redis_(monkeypatch, fake_redis):
    monkeypatch.setattr(
        webhook_cli.redis.Redis, "from_url", staticmethod(lambda url, **kw: fake_redis)
    )
    fake_redis.hset(keys.bank("BOC-NB"), "name", "Bank of China Ningbo")
    return fake_redis


def invoke(*args, input=None):
    return CliRunner().invoke(cli.main, ["webhook", *args], input=input)


def test_add_prints_the_secret_once_and_list_never(redis_):
    added = invoke("add", "--bank", "BOC-NB", "--url", "https://boc.example/hooks")
    assert added.exit_code == 0, added.output
    hook_id = re.search(r"added webhook (wh_\w+) for bank BOC-NB", added.output)[1]
    secret = re.search(r"signing secret \(shown only now\): (whsec_\S+)", added.output)[1]
    listed = invoke("list")
    assert listed.exit_code == 0
    assert hook_id in listed.output and "https://boc.example/hooks" in listed.output
    assert secret not in listed.output
    history = invoke("deliveries", hook_id)
    assert history.exit_code == 0 and "EVENT" in history.output
    removed = invoke("remove", hook_id)
    assert removed.exit_code == 0 and f"removed webhook {hook_id}" in removed.output
    assert hook_id not in invoke("list").output


def test_a_secret_from_stdin_is_not_echoed(redis_):
    added = invoke(
        "add",
        "--bank",
        "BOC-NB",
        "--url",
        "https://boc.example/h",
        "--secret-stdin",
        input="my-own-secret-0123456789\n",
    )
    assert added.exit_code == 0, added.output
    assert "my-own-secret" not in added.output
    hook_id = re.search(r"(wh_\w+)", added.output)[1]
    assert redis_.hget(keys.webhook(hook_id), "secret") == "my-own-secret-0123456789"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bank", "BOC-NB", "--url", "http://boc.example/h"], "url: http:// only for"),
        (["--bank", "BOC-NB", "--url", "https://u:p@boc.example/h"], "url: no user or password"),
        (["--bank", "NOPE", "--url", "https://boc.example/h"], "bank: no bank NOPE"),
    ],
)
def test_refusals_name_the_field(redis_, args, words):
    result = invoke("add", *args)
    assert result.exit_code == 1
    assert words in result.output
    assert redis_.zcard(keys.webhooks()) == 0


def test_production_refuses_plain_http_to_localhost(redis_, monkeypatch):
    monkeypatch.setenv("XINBAO_ENV", "production")
    result = invoke("add", "--bank", "BOC-NB", "--url", "http://127.0.0.1:9000/h")
    assert result.exit_code == 1 and "production" in result.output


def test_unknown_webhook_ids(redis_):
    for command in ("remove", "deliveries"):
        result = invoke(command, "wh_nope")
        assert result.exit_code == 1 and "no webhook wh_nope" in result.output
