"""scripts/devstack.py (`make run`): one stack per checkout, one data dir per Redis major.minor,
the demo only where it replaces nothing of someone else's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import ROOT, wait_until
from web import cli
from workflow import keys


def _load_devstack():
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


devstack = _load_devstack()


# --- the checkout lock ---------------------------------------------------------------------------


def test_second_lock_is_refused_while_the_first_is_held(tmp_path):
    lock = tmp_path / "var" / "devstack.lock"
    fd = devstack.lock_checkout(lock)
    try:
        with pytest.raises(devstack.AlreadyRunning) as info:
            devstack.lock_checkout(lock)
        message = str(info.value)
        assert "already running in this checkout" in message
        assert "Stop it first" in message
        assert "pid " in message  # who holds it, read from the lock file
    finally:
        devstack.os.close(fd)
    # Released with the descriptor: the next start gets it.
    devstack.os.close(devstack.lock_checkout(lock))


def _holder(lock: Path, then: str = "time.sleep(60)") -> subprocess.Popen:
    """Another process that takes the lock, says so, and then does ``then``."""
    path = str(ROOT / "scripts" / "devstack.py")
    script = (
        textwrap.dedent(f"""
        import importlib.util, subprocess, sys, time
        spec = importlib.util.spec_from_file_location("d", {path!r})
        d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)
        fd = d.lock_checkout(__import__("pathlib").Path({str(lock)!r}))
        print("locked", flush=True)
    """)
        + then
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_held_by_another_process_and_gone_with_it(tmp_path):
    lock = tmp_path / "devstack.lock"
    holder = _holder(lock)
    try:
        with pytest.raises(devstack.AlreadyRunning, match=f"pid {holder.pid}"):
            devstack.lock_checkout(lock)
    finally:
        # Killed without any clean-up, as a crash would: no stale lock is left behind.
        holder.kill()
        holder.wait()
    devstack.os.close(devstack.lock_checkout(lock))


def test_children_left_by_a_killed_stack_keep_the_lock(tmp_path):
    # The stack's processes inherit the lock: a redis-server orphaned by a killed devstack
    # still writes var/redis, so a new start must wait for it too.
    orphan_starter = (
        "child = subprocess.Popen(['sleep', '60'], pass_fds=(fd,))\nprint(child.pid, flush=True)\n"
    )
    lock = tmp_path / "devstack.lock"
    holder = _holder(lock, orphan_starter)
    orphan = int(holder.stdout.readline())
    holder.wait()
    try:
        with pytest.raises(devstack.AlreadyRunning, match=f"pid {holder.pid} is gone") as info:
            devstack.lock_checkout(lock)
        assert f"fuser -v {lock}" in str(info.value)
    finally:
        devstack.os.kill(orphan, 9)
    # SIGKILL is asynchronous: the lock goes when the orphan is gone.
    wait_until(lambda: _free(lock), 10, what="the lock to be released")


def _free(lock: Path) -> bool:
    try:
        devstack.os.close(devstack.lock_checkout(lock))
        return True
    except devstack.AlreadyRunning:
        return False


def test_a_second_make_run_refuses_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(devstack, "LOCK_FILE", tmp_path / "devstack.lock")
    fd = devstack.lock_checkout(devstack.LOCK_FILE)
    started = []
    monkeypatch.setattr(devstack, "start_redis", lambda *a: started.append(a))
    try:
        assert devstack.main() == 1
    finally:
        devstack.os.close(fd)
    assert started == []  # refused before starting anything
    out = capsys.readouterr().out
    assert "not starting: another `make run` is already running in this checkout" in out


# --- one data directory per Redis major.minor version ----------------------------------------


def _write(path: Path, content: str = "data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def test_data_directory_is_per_major_minor_version(tmp_path):
    data, others = devstack.redis_data_dir(tmp_path, "7.0")
    assert data == tmp_path / "7.0" and others == []
    assert devstack.redis_data_dir(tmp_path, "7.4")[0] == tmp_path / "7.4"
    assert devstack.redis_data_dir(tmp_path, "6.2")[0] == tmp_path / "6.2"


def test_another_versions_data_is_reported(tmp_path):
    _write(tmp_path / "7.4" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n...")
    _write(tmp_path / "7" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n...")
    _write(tmp_path / "7.0" / "redis.log", "a log is no data")
    data, others = devstack.redis_data_dir(tmp_path, "7.0")
    assert data == tmp_path / "7.0"
    assert others == [tmp_path / "7", tmp_path / "7.4"]
    # From Redis 7.4's side, a directory with only a log holds nothing to warn about.
    assert devstack.redis_data_dir(tmp_path, "7.4")[1] == [tmp_path / "7"]


def test_empty_files_are_no_data(tmp_path):
    _write(tmp_path / "7.0" / "appendonlydir" / "appendonly.aof.1.incr.aof", "")
    assert not devstack.has_data(tmp_path / "7.0")
    assert not devstack.has_data(tmp_path / "absent")


def test_data_of_the_former_flat_layout_moves_to_the_running_versions_directory(tmp_path):
    _write(tmp_path / "appendonlydir" / "appendonly.aof.manifest", "file ...")
    _write(tmp_path / "appendonly.aof", "*2\r\n...")
    moved = devstack.adopt_legacy_data(tmp_path, "7.2")
    assert len(moved) == 2
    assert (tmp_path / "7.2" / "appendonlydir" / "appendonly.aof.manifest").exists()
    # Redis 6 data, of an unknown minor: parked under its major, where the warning finds it.
    assert (tmp_path / "6" / "appendonly.aof").exists()
    assert not (tmp_path / "appendonlydir").exists()
    assert devstack.adopt_legacy_data(tmp_path, "7.2") == []  # done once
    assert devstack.redis_data_dir(tmp_path, "7.2")[1] == [tmp_path / "6"]


def test_flat_data_never_overwrites_a_version_directory(tmp_path):
    _write(tmp_path / "appendonlydir" / "old", "old")
    _write(tmp_path / "7.0" / "appendonlydir" / "new", "new")
    assert devstack.adopt_legacy_data(tmp_path, "7.0") == []
    assert (tmp_path / "appendonlydir" / "old").exists()


def test_a_major_only_directory_is_adopted_by_the_dot_zero_server_only(tmp_path):
    _write(tmp_path / "7" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n")
    # Redis 7.4 leaves it alone (7.0 could no longer read it after 7.4 rewrote it) ...
    assert devstack.adopt_legacy_data(tmp_path, "7.4") == []
    assert devstack.redis_data_dir(tmp_path, "7.4")[1] == [tmp_path / "7"]
    # ... Redis 7.0 takes it as its own.
    moved = devstack.adopt_legacy_data(tmp_path, "7.0")
    assert moved == [f"{tmp_path / '7'} -> {tmp_path / '7.0'}"]
    assert (tmp_path / "7.0" / "appendonlydir" / "appendonly.aof.1.incr.aof").exists()
    assert devstack.redis_data_dir(tmp_path, "7.0")[1] == []


def test_redis_version_reads_the_servers_major_and_minor(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=libc bits=64'\n")
    fake.chmod(0o755)
    assert devstack.redis_version(str(fake)) == "6.2"


def test_demo_reload_can_be_skipped(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(devstack.subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("XINBAO_DEMO", "0")
    devstack.load_demo({})
    assert ran == [] and "XINBAO_DEMO=0" in capsys.readouterr().out
    monkeypatch.delenv("XINBAO_DEMO")
    devstack.load_demo({})
    assert ran[0][0][1:] == ["load", str(devstack.DEMO_FILE)]
    assert "INV-HX-1001 has issue_date" in capsys.readouterr().out


def test_embedded_redis_6_uses_its_own_directory_and_says_loudly_what_it_hides(
    tmp_path, monkeypatch, capsys
):
    # A checkout that ran Redis 7.0 before, now falling back to the embedded Redis 6.2.
    _write(tmp_path / "redis" / "7.0" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n")
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=6.2.7 sha=00000000:0 malloc=libc bits=64'\n")
    fake.chmod(0o755)
    started = []
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(devstack, "REDIS_DATA", tmp_path / "redis")
    monkeypatch.setattr(devstack, "redis_binary", lambda: (str(fake), "embedded redis-server"))
    popen = devstack.subprocess.Popen

    def server(args, **kwargs):
        # `redis-server --version` runs for real; the server itself is only recorded.
        return started.append(args) if "--port" in args else popen(args, **kwargs)

    monkeypatch.setattr(devstack.subprocess, "Popen", server)
    monkeypatch.setattr(devstack, "wait_for_redis", lambda url: None)
    devstack.start_redis([], lock_fd=99)
    args = started[0]
    assert args[args.index("--dir") + 1] == str(tmp_path / "redis" / "6.2")
    assert args[args.index("--appendfsync") + 1] == "always"
    out = capsys.readouterr().out
    assert f"!!! {tmp_path / 'redis' / '7.0'} holds data of a Redis 7.0 server" in out
    assert "does NOT show" in out


# --- what the demo load may touch ----------------------------------------------------------------


def test_demo_is_not_loaded_into_the_redis_at_redis_url_unless_asked(
    tmp_path, monkeypatch, fake_redis, capsys
):
    """That Redis's own reference data stays: the demo would replace every section it holds."""
    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(lambda url, **kw: fake_redis))
    own = tmp_path / "own.json"
    demo = json.loads(devstack.DEMO_FILE.read_text(encoding="utf-8"))
    own.write_text(json.dumps({"banks": [{**demo["banks"][0], "bank_id": "OUR-OWN-BANK"}]}))
    assert CliRunner().invoke(cli.main, ["load", str(own)]).exit_code == 0

    def run(args, env=None, check=False, **_):
        result = CliRunner().invoke(cli.main, [str(a) for a in args[1:]], env=env)
        assert result.exit_code == 0, result.output
        return result

    monkeypatch.setenv("REDIS_URL", "redis://staging.example:6379/0")
    monkeypatch.delenv("XINBAO_DEMO", raising=False)
    monkeypatch.setattr(devstack.subprocess, "run", run)
    url = devstack.start_redis([], lock_fd=-1)  # REDIS_URL set: no private server
    devstack.load_demo({**dict(os.environ), "REDIS_URL": url})
    assert fake_redis.exists(keys.bank("OUR-OWN-BANK"))
    assert "XINBAO_DEMO=1 loads it anyway" in capsys.readouterr().out

    monkeypatch.setenv("XINBAO_DEMO", "1")  # asked for explicitly: loaded
    devstack.load_demo({**dict(os.environ), "REDIS_URL": url})
    assert not fake_redis.exists(keys.bank("OUR-OWN-BANK"))
    assert fake_redis.exists(keys.bank("BOC-NB"))


def test_production_environment_skips_the_demo_with_a_message(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(devstack.subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("XINBAO_DEMO", raising=False)
    devstack.load_demo({"XINBAO_ENV": "production"})
    assert ran == []
    assert "XINBAO_ENV=production: the demo data is not loaded" in capsys.readouterr().out


def test_a_failed_demo_load_stops_the_stack_in_one_line(tmp_path, monkeypatch, capsys):
    def failing(*a, **k):
        raise subprocess.CalledProcessError(1, a[0])

    monkeypatch.setattr(devstack, "LOCK_FILE", tmp_path / "devstack.lock")
    monkeypatch.setattr(devstack, "start_redis", lambda *a: "redis://127.0.0.1:1/0")
    monkeypatch.setattr(devstack.subprocess, "run", failing)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("XINBAO_DEMO", raising=False)
    assert devstack.main() == 1
    out = capsys.readouterr().out
    assert "[xinbao] stopping: loading " in out and "demo.json failed (exit 1, see above)" in out
    assert "Traceback" not in out


def test_an_unknown_xinbao_env_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(devstack, "LOCK_FILE", tmp_path / "devstack.lock")
    started = []
    monkeypatch.setattr(devstack, "start_redis", lambda *a: started.append(a))
    monkeypatch.setenv("XINBAO_ENV", "prod")
    assert devstack.main() == 1
    assert started == []
    assert "not starting: XINBAO_ENV='prod' is not one of development, production, test" in (
        capsys.readouterr().out
    )


def test_the_own_file_command_is_quoted_and_hides_a_password():
    said = devstack.own_file_command("redis://:s3cret@db.example:6380/2")
    assert not any("s3cret" in line for line in said)
    assert "use your own REDIS_URL" in said[1]
    assert said[-1].startswith("    REDIS_URL='redis://:***@db.example:6380/2' ")
    plain = devstack.own_file_command("redis://127.0.0.1:50509/0")
    assert plain[-1].startswith("    REDIS_URL=redis://127.0.0.1:50509/0 ")
    assert plain[-1].endswith("xinbao load my-file.json")


@pytest.mark.parametrize(
    "url",
    [
        "redis://db.example:6380/2?password=s3cret",  # redis-py reads the password from here too
        "unix:///run/redis.sock?db=0&password=s3cret",
    ],
)
def test_a_password_given_as_a_query_parameter_is_masked(url):
    assert "s3cret" not in devstack.mask_url(url)
    assert "s3cret" not in "\n".join(devstack.own_file_command(url))


@pytest.mark.parametrize("value", ["false", "no", "off"])
def test_an_xinbao_demo_meaning_no_does_not_load_the_demo(monkeypatch, capsys, value):
    ran = []
    monkeypatch.setattr(devstack.subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("XINBAO_DEMO", value)
    devstack.load_demo({})
    assert ran == []


def test_an_xinbao_demo_that_is_neither_yes_nor_no_is_refused(monkeypatch):
    monkeypatch.setenv("XINBAO_DEMO", "maybe")
    with pytest.raises(devstack.DevstackError, match="XINBAO_DEMO"):
        devstack.load_demo({})
