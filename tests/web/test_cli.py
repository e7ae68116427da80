"""The ``xinbao load`` and ``flask load`` commands: a whole file loads, a bad one loads nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis
from click.testing import CliRunner
from flask.cli import FlaskGroup

from tests.conftest import DEMO_FILE
from web import cli
from workflow.reference import ReferenceRepository

COUNTS = "3 policies, 3 limits"


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
    [(url, options)] = into_fake_redis  # through workflow.redis_client.connect
    assert url == "redis://example.invalid:6379/3" and options["decode_responses"] is True
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
    assert (
        "loaded 1 banks (each section replacing the stored one; sections not in the file"
        " untouched)" in result.stdout
    )
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


# --- every bad file: the clean report, exit 1, nothing loaded, no traceback -----------------


def _write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _demo_with(**changes) -> str:
    """data/demo.json's text with ``section=(index, field, raw JSON)`` spliced in."""
    document = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    marker = {}
    for section, (index, name, _) in changes.items():
        marker[section] = f"@@{section}@@"
        document[section][index][name] = marker[section]
    text = json.dumps(document)
    for section, (_, _, raw) in changes.items():
        text = text.replace(f'"{marker[section]}"', raw)
    return text


BAD_FILES = {
    "not UTF-8": (b'{"policies": [{"policy_no": "\xff\xfe"}]}', "not UTF-8 text"),
    "latin-1 name": (
        DEMO_FILE.read_text(encoding="utf-8").encode("latin-1", "replace"),
        "not UTF-8 text",
    ),
    "5,000-digit int": (
        _demo_with(policies=(0, "declaration_window_days", "9" * 5000)),
        "a number has 5000 digits",
    ),
    "5,000-digit float": (
        _demo_with(limits=(0, "amount", "1." + "0" * 5000)),
        "a number is 5002 characters long",
    ),
    "deep nesting": ('{"policies": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    "NaN": (_demo_with(banks=(0, "min_amount", "NaN")), "NaN is not a JSON number"),
    "Infinity": (_demo_with(banks=(0, "advance_rate", "-Infinity")), "-Infinity is not a JSON"),
    "huge exponent": (_demo_with(banks=(0, "max_amount", "1e999999")), "max_amount"),
    "5,000-digit money string": (
        _demo_with(limits=(0, "amount", '"' + "9" * 5000 + '"')),
        "limits[0] (limit_id=LIM-HX-DE0001).amount",
    ),
    "duplicate keys": (
        '{"banks": [], "banks": [], "policies": [{"a": 1, "a": 2}]}',
        "duplicate key 'banks'",
    ),
    "surrogate in a name": (
        _demo_with(exporters=(0, "name", '"Haixin \\ud800"')),
        "exporters[0] (uscc=91330200MA2AB1C2DJ).name: must be valid Unicode",
    ),
    "surrogate in an id and a key": (
        '{"limits": [{"limit_id": "L\\udc00\\u0007", "\\ud800": 1}], "\\udfff": []}',
        "limits[0] (limit_id=L\\udc00\\u0007).\\ud800: Unknown field",
    ),
    "surrogate in a token": (
        _demo_with(tokens=(0, "token", '"demo-\\ud800-token-123456"')),
        "tokens[0].token: use only letters",
    ),
    "truncated": ('{"policies": [', "not valid JSON"),
}


@pytest.mark.parametrize("content, problem", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_cli_bad_file_gets_the_clean_report(into_fake_redis, fake_redis, tmp_path, content,
                                            problem):
    path = _write(tmp_path, "bad.json", content)
    result = CliRunner().invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "bad.json: not loaded," in result.stderr
    assert problem in result.stderr
    result.stderr.encode("utf-8")  # every problem is printable
    assert fake_redis.keys("*") == []


def test_cli_directory_and_unreadable_file(into_fake_redis, fake_redis, tmp_path, monkeypatch):
    result = CliRunner().invoke(cli.main, ["load", str(tmp_path)])
    assert result.exit_code == 1
    assert "not loaded, 1 problem(s)" in result.stderr
    assert "cannot read the file" in result.stderr
    # Tests may run as root, who reads any file: make this one unreadable by force.
    path = _write(tmp_path, "secret.json", "{}")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    result = CliRunner().invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 1
    assert "cannot read the file: Permission denied" in result.stderr
    assert fake_redis.keys("*") == []


def test_xinbao_load_subprocess_reports_without_traceback(tmp_path):
    """The real command in its own process (no Redis is touched: the file is bad)."""
    path = _write(tmp_path, "big.json", '{"policies": [' + "9" * 5000 + "]}")
    run = subprocess.run(
        [sys.executable, "-c", "from web.cli import main; main()", "load", str(path)],
        capture_output=True,
        text=True,
        env={"REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"},
        timeout=60,
        cwd=DEMO_FILE.parent.parent,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "big.json: not loaded, 1 problem(s)" in run.stderr


def test_xinbao_health_exits_1_until_beat_is_heard_from_then_0(into_fake_redis, fake_redis):
    import time

    from workflow.heartbeats import record_beat

    url = ["--redis-url", "redis://example.invalid:6379/3", "--only", "beat"]
    result = CliRunner().invoke(cli.main, ["health", *url])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "status": "not ready", "beat": "never heard from", "worker_hosts": []
    }
    record_beat(fake_redis, time.time())
    result = CliRunner().invoke(cli.main, ["health", *url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["beat"] == "ok"
    # Without --only every check is asked: no worker has swept, so not ready.
    result = CliRunner().invoke(cli.main, ["health", "--redis-url", "redis://x.invalid:1/0"])
    assert result.exit_code == 1 and json.loads(result.stdout)["workers"] != "ok"
