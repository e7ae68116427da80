"""``xinbao token add|revoke|list`` and the production rule for demo tokens."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import DEMO_FILE, ROOT
from tests.web.conftest import HAIXIN, TOKENS, auth, error_of
from web import cli
from workflow import keys, tokens
from workflow.tokens import DEMO_TOKEN_DIGESTS, is_demo_token, token_digest

PRODUCTION = {"XINBAO_ENV": "production"}


def run(*args: str, stdin: str | None = None, env: dict | None = None):
    return CliRunner().invoke(cli.main, list(args), input=stdin, env=env)


def listed(fake_redis) -> dict[str, str]:
    """digest prefix -> the line `xinbao token list` prints for it."""
    result = run("token", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()[1:]
    return {line.split()[0]: line for line in lines}


def test_add_prints_a_new_random_token_once_and_it_authenticates(
    client, into_fake_redis, fake_redis
):
    result = run("token", "add", "--bank", "ICBC-NB")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert len(token) >= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert not token.startswith("demo-")
    assert "shown only this once" in result.stderr
    assert token not in result.stderr
    # Only the digest is stored, in the token key and the registry.
    assert fake_redis.exists(keys.token(token_digest(token)))
    assert fake_redis.hexists(keys.token_registry(), token_digest(token))
    assert not [k for k in fake_redis.keys("*") if token in k]
    rv = client.get("/api/v1/deals", headers={"Authorization": f"Bearer {token}"})
    assert rv.status_code == 200
    second = run("token", "add", "--bank", "ICBC-NB").stdout.strip()
    assert second != token


def test_add_never_takes_the_token_as_an_argument(into_fake_redis):
    result = run("token", "add", "--bank", "ICBC-NB", "my-secret-token-0123456789")
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output.lower()


def test_add_from_stdin_and_its_checks(client, into_fake_redis, fake_redis):
    secret = "a-token-from-the-vault-0123456789"
    result = run("token", "add", "--exporter", HAIXIN, "--stdin", stdin=secret + "\n")
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    rv = client.get("/api/v1/deals", headers={"Authorization": f"Bearer {secret}"})
    assert rv.status_code == 200
    again = run("token", "add", "--exporter", HAIXIN, "--stdin", stdin=secret)
    assert again.exit_code == 1 and "already in use" in again.stderr
    short = run("token", "add", "--exporter", HAIXIN, "--stdin", stdin="short")
    assert short.exit_code == 1 and "16-256 characters" in short.stderr
    for args in (["--bank", "NO-SUCH-BANK"], ["--exporter", "91330200MA2AB1C2DX"], []):
        bad = run("token", "add", *args)
        assert bad.exit_code == 1, args
        assert bad.stdout == ""  # no token printed for a refused add


def test_list_shows_digest_prefix_subject_and_date_never_the_token(
    into_fake_redis, fake_redis, app
):
    token = run("token", "add", "--bank", "CCB-NB").stdout.strip()
    result = run("token", "list")
    assert result.exit_code == 0
    assert token not in result.output
    assert not any(t in result.output for t in TOKENS.values())
    lines = listed(fake_redis)
    mine = lines[token_digest(token)[:12]]
    assert "bank" in mine and "CCB-NB" in mine and "cli" in mine
    assert re.search(r"\d{4}-\d{2}-\d{2}T", mine)
    demo = lines[token_digest(TOKENS["haixin"])[:12]]
    assert HAIXIN in demo and "demo token" in demo and "file" in demo
    assert len(lines) == len(TOKENS) + 1


def test_list_reads_the_registry_not_the_keyspace(into_fake_redis, fake_redis, app, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("token list must not scan keys")

    monkeypatch.setattr(fake_redis, "keys", no_scan)
    monkeypatch.setattr(fake_redis, "scan_iter", no_scan)
    assert len(listed(fake_redis)) == len(TOKENS)


def test_revoke_by_prefix_answers_401_at_once(client, into_fake_redis, fake_redis):
    assert client.get("/api/v1/deals", headers=auth("boc")).status_code == 200
    prefix = token_digest(TOKENS["boc"])[:12]
    result = run("token", "revoke", prefix)
    assert result.exit_code == 0, result.output
    assert "BOC-NB" in result.stdout
    rv = client.get("/api/v1/deals", headers=auth("boc"))
    error_of(rv, 401, "UNAUTHENTICATED")
    assert prefix not in listed(fake_redis)
    again = run("token", "revoke", prefix)
    assert again.exit_code == 1 and "no token" in again.stderr
    # Other tokens are untouched.
    assert client.get("/api/v1/deals", headers=auth("icbc")).status_code == 200


def test_revoke_from_stdin(client, into_fake_redis):
    result = run("token", "revoke", "--stdin", stdin=TOKENS["haixin"] + "\n")
    assert result.exit_code == 0, result.output
    assert TOKENS["haixin"] not in result.output
    error_of(client.get("/api/v1/deals", headers=auth("haixin")), 401)


def test_revoke_refuses_an_ambiguous_or_too_short_prefix(into_fake_redis, fake_redis, app):
    token = run("token", "add", "--bank", "BOC-NB").stdout.strip()
    digest = token_digest(token)
    short = run("token", "revoke", digest[:5])
    assert short.exit_code == 1 and "at least 6 hex digits" in short.stderr
    # A second registered digest sharing the first 12 hex digits (1 in 2**48 by chance).
    twin = digest[:12] + ("0" if digest[12] != "0" else "1") * 52
    entry = {
        "role": "bank",
        "subject": "BOC-NB",
        "added_at": "2026-01-01T00:00:00+00:00",
        "source": "cli",
    }
    fake_redis.hset(keys.token_registry(), twin, json.dumps(entry))
    result = run("token", "revoke", digest[:12])
    assert result.exit_code == 1
    assert "2 tokens have a digest starting" in result.stderr
    assert fake_redis.exists(keys.token(digest))  # nothing was revoked
    assert run("token", "revoke", digest[:13]).exit_code == 0
    assert not fake_redis.exists(keys.token(digest))


def test_a_revoked_token_cannot_come_back_with_a_reload(client, into_fake_redis, fake_redis):
    run("token", "revoke", "--stdin", stdin=TOKENS["ccb"])
    # The reload goes through (make run reloads the demo on every start), the token stays out.
    result = run("load", str(DEMO_FILE))
    assert result.exit_code == 0
    assert "tokens[5].token: revoked earlier, so not loaded" in result.stderr
    error_of(client.get("/api/v1/deals", headers=auth("ccb")), 401)
    assert client.get("/api/v1/deals", headers=auth("boc")).status_code == 200
    again = run("token", "add", "--bank", "CCB-NB", "--stdin", stdin=TOKENS["ccb"])
    assert again.exit_code == 1 and "revoked" in again.stderr


def test_reload_keeps_when_a_token_was_added(into_fake_redis, fake_redis):
    assert run("load", str(DEMO_FILE)).exit_code == 0
    before = fake_redis.hgetall(keys.token_registry())
    added = fake_redis.hgetall(keys.token_added())
    assert len(added) == len(TOKENS)
    assert run("load", str(DEMO_FILE)).exit_code == 0
    assert fake_redis.hgetall(keys.token_registry()) == before
    assert fake_redis.hgetall(keys.token_added()) == added
    entry = json.loads(before[token_digest(TOKENS["boc"])])
    assert entry["source"] == "file:demo.json"


# --- demo tokens and production ---------------------------------------------------------------


def test_every_demo_token_is_recognised():
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    tokens = [t["token"] for t in document["tokens"]]
    assert {token_digest(t) for t in tokens} == DEMO_TOKEN_DIGESTS
    assert all(is_demo_token(t) for t in tokens)
    assert is_demo_token("DEMO-anything-at-all-123")
    assert not is_demo_token("kq3V0s9xX1-random-production-token")


def test_production_refuses_the_demo_tokens(into_fake_redis, fake_redis):
    result = run("load", str(DEMO_FILE), env=PRODUCTION)
    assert result.exit_code == 1
    # 6 demo tokens and 9 users with the demo password.
    assert "not loaded, 15 problem(s)" in result.stderr
    assert "tokens[0].token: a demo token" in result.stderr
    assert "users[0] (username=boc-officer).password_hash: the demo password" in result.stderr
    assert "--allow-demo-tokens" in result.stderr
    assert fake_redis.keys("*") == []


def test_production_loads_demo_tokens_only_when_forced(into_fake_redis, fake_redis):
    result = run("load", str(DEMO_FILE), "--allow-demo-tokens", env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert fake_redis.exists(keys.token(token_digest(TOKENS["boc"])))


def test_production_refuses_a_demo_token_on_stdin(into_fake_redis, app):
    result = run(
        "token",
        "add",
        "--bank",
        "BOC-NB",
        "--stdin",
        stdin="demo-my-own-token-12345",
        env=PRODUCTION,
    )
    assert result.exit_code == 1 and "demo token" in result.stderr


def test_production_file_without_demo_tokens_loads(into_fake_redis, fake_redis, tmp_path):
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    for entry in document["tokens"]:
        entry["token"] = entry["token"].replace("demo-", "prod-") + "-x8Kq2"
    del document["users"]  # their password is the public demo one
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = run("load", str(path), env=PRODUCTION)
    assert result.exit_code == 0, result.output


def test_flask_load_follows_the_apps_environment(app, fake_redis):
    fake_redis.flushall()
    prod = app.extensions["xinbao_settings"].__class__(
        **{**app.extensions["xinbao_settings"].__dict__, "env": "production"}
    )
    app.extensions["xinbao_settings"] = prod
    result = app.test_cli_runner().invoke(args=["load", str(DEMO_FILE)])
    assert result.exit_code == 1
    assert "a demo token" in result.output
    result = app.test_cli_runner().invoke(args=["load", str(DEMO_FILE), "--allow-demo-tokens"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_docker_compose_runs_in_production_and_never_loads_the_demo_file(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("web", "worker", "beat"):
        assert compose["services"][name]["environment"]["XINBAO_ENV"] == "production"
    assert "demo.json" not in text


def test_a_token_revoked_during_a_load_stays_revoked(fake_redis, demo_reference, monkeypatch):
    """The revocation lands between the load's read of the revoked list and its write: the
    WATCH makes the load retry, and the retry leaves the token out."""
    from workflow import tokens as token_store
    from workflow.reference import store_reference

    real = token_store.revoked_digests
    calls = []

    def revoke_meanwhile(redis, tokens):
        seen = real(redis, tokens)
        if not calls:
            calls.append(1)
            token_store.revoke_digest(fake_redis, token_digest(TOKENS["ccb"]))
        return seen

    store_reference(fake_redis, demo_reference)
    monkeypatch.setattr("workflow.reference.loading.revoked_digests", revoke_meanwhile)
    store_reference(fake_redis, demo_reference)
    assert not fake_redis.exists(keys.token(token_digest(TOKENS["ccb"])))


# --- tokens in a reference file ------------------------------------------------------------------


def test_a_load_never_moves_a_live_token_to_another_principal(
    into_fake_redis, fake_redis, tmp_path
):
    assert run("load", "data/demo.json").exit_code == 0
    secret = "vault-token-abcdefghijklmnop"
    added = run("token", "add", "--exporter", HAIXIN, "--stdin", stdin=secret + "\n")
    assert added.exit_code == 0, added.output
    path = tmp_path / "more.json"
    path.write_text(json.dumps({"tokens": [{"token": secret, "bank_id": "BOC-NB"}]}))
    result = run("load", str(path))
    assert result.exit_code == 1
    assert "more.json: not loaded, 1 problem(s):" in result.stderr
    assert f"tokens[0].token: already in use for exporter {HAIXIN}" in result.stderr
    assert tokens.lookup(fake_redis, secret) == tokens.Principal("exporter", HAIXIN)
    # The same principal again is no change, and loads.
    path.write_text(json.dumps({"tokens": [{"token": secret, "exporter_uscc": HAIXIN}]}))
    assert run("load", str(path)).exit_code == 0
    assert run("load", "data/demo.json").exit_code == 0  # the demo file reloads unchanged


def test_a_files_token_needs_its_subject_in_the_file_or_loaded(
    into_fake_redis, fake_redis, tmp_path
):
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {"token": "token-for-a-bank-0000000001", "bank_id": "NO-SUCH-BANK"},
                    {"token": "token-for-an-exporter-00001", "exporter_uscc": HAIXIN},
                ]
            }
        )
    )
    result = run("load", str(path))
    assert result.exit_code == 1
    assert "tokens[0]: no bank NO-SUCH-BANK in the file or the loaded reference data" in (
        result.stderr
    )
    assert f"tokens[1]: no exporter {HAIXIN} in the file or the loaded reference data" in (
        result.stderr
    )
    assert fake_redis.dbsize() == 0  # nothing loaded
    # A section in the file is the whole truth: a subject it leaves out will not exist.
    demo = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    path.write_text(json.dumps({"banks": demo["banks"][:1], "tokens": demo["tokens"]}))
    result = run("load", str(path))
    assert result.exit_code == 1
    assert "no bank ICBC-NB in the file's banks" in result.stderr
