"""scripts/devstack.py (`make run`): one stack per checkout, one data dir per Redis version."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT, wait_until


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


# --- one data directory per Redis major version ----------------------------------------------


def _write(path: Path, content: str = "data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def test_data_directory_is_per_major_version(tmp_path):
    data, others = devstack.redis_data_dir(tmp_path, 7)
    assert data == tmp_path / "7" and others == []
    data, others = devstack.redis_data_dir(tmp_path, 6)
    assert data == tmp_path / "6"


def test_another_versions_data_is_reported(tmp_path):
    _write(tmp_path / "7" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n...")
    _write(tmp_path / "6" / "redis.log", "a log is no data")
    data, others = devstack.redis_data_dir(tmp_path, 6)
    assert data == tmp_path / "6"
    assert others == [tmp_path / "7"]
    # From Redis 7's side, a directory with only a log holds nothing to warn about.
    assert devstack.redis_data_dir(tmp_path, 7)[1] == []


def test_empty_files_are_no_data(tmp_path):
    _write(tmp_path / "7" / "appendonlydir" / "appendonly.aof.1.incr.aof", "")
    assert not devstack.has_data(tmp_path / "7")
    assert not devstack.has_data(tmp_path / "absent")


def test_data_of_the_former_flat_layout_moves_to_its_versions_directory(tmp_path):
    _write(tmp_path / "appendonlydir" / "appendonly.aof.manifest", "file ...")
    _write(tmp_path / "appendonly.aof", "*2\r\n...")
    moved = devstack.adopt_legacy_data(tmp_path)
    assert len(moved) == 2
    assert (tmp_path / "7" / "appendonlydir" / "appendonly.aof.manifest").exists()
    assert (tmp_path / "6" / "appendonly.aof").exists()
    assert not (tmp_path / "appendonlydir").exists()
    assert devstack.adopt_legacy_data(tmp_path) == []  # done once


def test_flat_data_never_overwrites_a_version_directory(tmp_path):
    _write(tmp_path / "appendonlydir" / "old", "old")
    _write(tmp_path / "7" / "appendonlydir" / "new", "new")
    assert devstack.adopt_legacy_data(tmp_path) == []
    assert (tmp_path / "appendonlydir" / "old").exists()


def test_redis_major_reads_the_servers_version(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=libc bits=64'\n")
    fake.chmod(0o755)
    assert devstack.redis_major(str(fake)) == 6


def test_demo_reload_can_be_skipped(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(devstack.subprocess, "run", lambda *a, **k: ran.append(a))
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
    # A checkout that ran Redis 7 before, now falling back to the embedded Redis 6.2.
    _write(tmp_path / "redis" / "7" / "appendonlydir" / "appendonly.aof.1.incr.aof", "*2\r\n")
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
    assert args[args.index("--dir") + 1] == str(tmp_path / "redis" / "6")
    assert args[args.index("--appendfsync") + 1] == "always"
    out = capsys.readouterr().out
    assert f"!!! {tmp_path / 'redis' / '7'} holds data of a Redis 7 server" in out
    assert "does NOT show" in out
