"""The ``xinbao load`` and ``flask load`` commands: a whole file loads, a bad one loads nothing."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner
from flask.cli import FlaskGroup

from tests.conftest import DEMO_FILE
from web import cli
from workflow.reference import ReferenceRepository

COUNTS = "3 policies, 3 limits"


@pytest.fixture
def into_fake_redis(monkeypatch, fake_redis):
    """``redis.Redis.from_url`` in web.cli hands out fake_redis; returns the URLs asked for."""
    asked = []

    def from_url(url, **kwargs):
        asked.append((url, kwargs))
        return fake_redis

    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(from_url))
    return asked


def _bad_file(tmp_path):
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    document["limits"][0]["amount"] = "lots"
    document["exporters"][1]["uscc"] = "91330200MA2CD3E4F0"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_cli_loads_the_demo_file(into_fake_redis, fake_redis):
    result = CliRunner().invoke(cli.main, ["load", str(DEMO_FILE), "--redis-url",
                                           "redis://example.invalid:6379/3"])
    assert result.exit_code == 0, result.output
    assert "loaded" in result.stdout
    assert COUNTS in result.stdout
    assert "6 tokens" in result.stdout
    assert into_fake_redis == [("redis://example.invalid:6379/3", {"decode_responses": True})]
    reference = ReferenceRepository(fake_redis)
    assert reference.principal("demo-exporter-haixin-0001").subject == "91330200MA2AB1C2DJ"
    assert {b.bank_id for b in reference.banks()} == {"BOC-NB", "ICBC-NB", "CCB-NB"}


def test_cli_load_is_safe_to_repeat(into_fake_redis, fake_redis):
    runner = CliRunner()
    assert runner.invoke(cli.main, ["load", str(DEMO_FILE)]).exit_code == 0
    before = sorted(fake_redis.keys("*"))
    assert runner.invoke(cli.main, ["load", str(DEMO_FILE)]).exit_code == 0
    assert sorted(fake_redis.keys("*")) == before


def test_cli_load_of_one_section_replaces_only_it(into_fake_redis, fake_redis, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli.main, ["load", str(DEMO_FILE)]).exit_code == 0
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    path = tmp_path / "banks.json"
    path.write_text(json.dumps({"banks": document["banks"][:1]}), encoding="utf-8")
    result = runner.invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert "loaded 1 banks (each replacing its section; others untouched)" in result.stdout
    reference = ReferenceRepository(fake_redis)
    assert [b.bank_id for b in reference.banks()] == [document["banks"][0]["bank_id"]]
    assert reference.policy("SIN-2026-0001") is not None


def test_cli_redis_url_from_environment(into_fake_redis):
    result = CliRunner().invoke(cli.main, ["load", str(DEMO_FILE)],
                                env={"REDIS_URL": "redis://from-env:6379/2"})
    assert result.exit_code == 0, result.output
    assert into_fake_redis[0][0] == "redis://from-env:6379/2"


def test_cli_bad_file_names_every_problem_and_loads_nothing(into_fake_redis, fake_redis,
                                                            tmp_path):
    path = _bad_file(tmp_path)
    result = CliRunner().invoke(cli.main, ["load", str(path), "--redis-url", "redis://x"])
    assert result.exit_code == 1
    assert "not loaded, 2 problem(s)" in result.stderr
    assert "limits[0] (limit_id=LIM-HX-DE0001).amount" in result.stderr
    assert "exporters[1] (uscc=91330200MA2CD3E4F0).uscc" in result.stderr
    assert "loaded 3" not in result.stdout
    assert fake_redis.keys("*") == []


def test_cli_invalid_json_and_missing_file(into_fake_redis, fake_redis, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr
    missing = CliRunner().invoke(cli.main, ["load", str(tmp_path / "absent.json")])
    assert missing.exit_code == 2
    assert fake_redis.keys("*") == []


def test_cli_does_not_touch_the_real_redis_class_afterwards():
    # The monkeypatch above is undone: from_url is redis-py's own again.
    assert redis.Redis.from_url.__qualname__ == "Redis.from_url"


def _flask(app):
    """The ``flask`` command line of ``app``, as ``flask --app web load`` runs it."""
    return FlaskGroup(create_app=lambda: app)


def test_flask_load_command_uses_the_apps_redis(app, fake_redis):
    fake_redis.flushall()
    result = CliRunner().invoke(_flask(app), ["load", str(DEMO_FILE)])
    assert result.exit_code == 0, result.output
    assert COUNTS in result.output
    assert ReferenceRepository(fake_redis).bank("BOC-NB") is not None


def test_flask_load_command_refuses_a_bad_file(app, fake_redis, tmp_path):
    fake_redis.flushall()
    result = CliRunner().invoke(_flask(app), ["load", str(_bad_file(tmp_path))])
    assert result.exit_code == 1
    assert "limits[0] (limit_id=LIM-HX-DE0001)" in result.stderr
    assert fake_redis.keys("*") == []


def test_flask_load_command_with_the_test_cli_runner(app, fake_redis):
    fake_redis.flushall()
    result = app.test_cli_runner().invoke(args=["load", str(DEMO_FILE)])
    assert result.exit_code == 0, result.output
    assert COUNTS in result.output
    assert ReferenceRepository(fake_redis).bank("BOC-NB") is not None


def test_flask_load_command_with_the_test_cli_runner_refuses_a_bad_file(app, fake_redis,
                                                                         tmp_path):
    fake_redis.flushall()
    result = app.test_cli_runner().invoke(args=["load", str(_bad_file(tmp_path))])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "limits[0] (limit_id=LIM-HX-DE0001)" in result.output
    assert fake_redis.keys("*") == []
