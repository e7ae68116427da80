"""Test support: private redis-server processes and the Xinbao processes run against them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def web_answers(base: str) -> bool:
    """Whether the web app at ``base`` answers its liveness check."""
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:  # refused, or accepted before the app is loaded
        return False


def require_real_redis_or_skip(reason: str) -> None:
    """Skip a test that needs a real Redis, unless CI demands one (XINBAO_REQUIRE_REDIS=1)."""
    if os.environ.get("XINBAO_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason}, and XINBAO_REQUIRE_REDIS=1 forbids skipping")
    pytest.skip(reason)


def browser_required() -> bool:
    """Whether browser tests must run: under CI (``CI`` set, as every CI service does) or with
    XINBAO_REQUIRE_BROWSER=1; elsewhere they skip when no Chromium is installed."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("XINBAO_REQUIRE_BROWSER") == "1"


def require_browser_or_skip(reason: str) -> None:
    """Skip a browser test that cannot run here, unless CI demands it (then it fails)."""
    if browser_required():
        pytest.fail(f"{reason}, and CI (or XINBAO_REQUIRE_BROWSER=1) forbids skipping")
    pytest.skip(reason)


# Debian's chromium package; XINBAO_CHROMIUM names another Chromium binary.
CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    """The Chromium the browser tests drive, or None when there is none."""
    wanted = os.environ.get("XINBAO_CHROMIUM")
    for path in [wanted] if wanted else [CHROMIUM, shutil.which("chromium")]:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


# As in docker-compose.yml: a deal's hash (a few dozen short fields) stays a compact listpack.
REDIS_TUNING = ("--hash-max-ziplist-value", "1024")


class RedisServer:
    """A private redis-server on a free port, optionally with AOF, that tests may restart."""

    def __init__(self, workdir: Path, appendonly: bool = False, fsync: str = "always",
                 extra: tuple[str, ...] = ()):
        self.binary = shutil.which("redis-server")
        self.workdir = workdir
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra = extra  # more redis-server options, e.g. ("--replicaof", host, port)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.binary is None:
            require_real_redis_or_skip("no redis-server on PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--maxmemory-policy", "noeviction",
                *REDIS_TUNING,
                "--logfile", str(self.workdir / "redis.log")]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", self.fsync]
        else:
            args += ["--appendonly", "no"]
        args += list(self.extra)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), 15, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would: only what the AOF already holds survives."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class SentinelCluster:
    """A Redis primary, one replica and three sentinels (``redis-server --sentinel``) on free
    ports, failing over within about two seconds of the primary's death."""

    MASTER = "xinbao"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.primary = RedisServer(workdir / "primary")
        self.replica: RedisServer | None = None
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []

    def start(self) -> SentinelCluster:
        self.primary.start()
        self.replica = RedisServer(
            self.workdir / "replica", extra=("--replicaof", "127.0.0.1", str(self.primary.port))
        ).start()
        wait_until(lambda: self.replicas_of(self.primary.port) == 1, 15, what="the replica")
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            # Sentinel rewrites its file as it learns the topology: one writable file each.
            conf.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {self.workdir}",
                f"logfile {self.workdir / f'sentinel-{port}.log'}",
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.primary.port} 2",
                f"sentinel down-after-milliseconds {self.MASTER} 1000",
                f"sentinel failover-timeout {self.MASTER} 5000",
                f"sentinel parallel-syncs {self.MASTER} 1", "",
            ]))
            self.sentinels.append(subprocess.Popen(
                [self.primary.binary, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port, decode_responses=True)
            wait_until(lambda s=sentinel: _sees_all(s, self.MASTER), 20,
                       what=f"sentinel {port} to see the replica and the other sentinels")
        return self

    def env(self) -> dict[str, str]:
        """Settings that reach Redis only through the sentinels (the URL names no server
        that exists: the database number is all that is read from it)."""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": self.MASTER,
            "REDIS_URL": "redis://sentinel-named-primary:1/0",
        }

    def master_port(self) -> int | None:
        """The primary's port as the sentinels name it now."""
        for port in self.sentinel_ports:
            try:
                found = redis.Redis(port=port, socket_timeout=1).execute_command(
                    "SENTINEL", "get-master-addr-by-name", self.MASTER)
                return int(found[1])
            except redis.RedisError:
                continue
        return None

    def promoted(self, dead_port: int, timeout: float = 20) -> int:
        """Wait until the sentinels name a primary other than ``dead_port``; its port."""
        return wait_until(lambda: (port := self.master_port()) not in (None, dead_port) and port,
                          timeout, interval=0.1, what="the sentinels to promote the replica")

    def rejoin(self, old: RedisServer, new_primary_port: int) -> None:
        """Restart the dead primary as a replica of the promoted one (what its supervisor
        does), so the primary has a replica again; roles swap in this object."""
        old.extra = ("--replicaof", "127.0.0.1", str(new_primary_port))
        old.start()
        wait_until(lambda: self.replicas_of(new_primary_port) == 1, 20,
                   what="the old primary to resync as a replica")
        assert self.replica is not None
        if self.replica.port == new_primary_port:
            self.primary, self.replica = self.replica, old

    @staticmethod
    def replicas_of(port: int) -> int:
        """Replicas connected to the server on ``port`` and online."""
        info = redis.Redis(port=port, socket_timeout=1).info("replication")
        return sum(1 for key, value in info.items()
                   if key.startswith("slave") and isinstance(value, dict)
                   and value.get("state") == "online")

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for server in (self.primary, self.replica):
            if server is not None:
                server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("sentinel-*.log")))


def _sees_all(sentinel: redis.Redis, master: str) -> bool:
    """The sentinel knows the replica and both other sentinels: ready to fail over."""
    try:
        state = sentinel.sentinel_master(master)
    except redis.RedisError:
        return False
    return state.get("num-slaves") == 1 and state.get("num-other-sentinels") == 2


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class Processes:
    """The web app (gunicorn), Celery workers and beat, started as real processes."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = {**os.environ, **env}
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=log,
                                start_new_session=True)
        self.running[name] = proc
        return proc

    def start_stack(self) -> str:
        """gunicorn on a free port, a worker and beat; the web's base URL once it answers."""
        port = free_port()
        self.web(port)
        self.worker()
        self.beat()
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: web_answers(base), 30, what="gunicorn")
        return base

    def web(self, port: int, name: str = "web", workers: int = 2) -> subprocess.Popen:
        return self.start(name, [str(BIN / "gunicorn"), "--config", "python:web.gunicorn_conf",
                                 "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                                 "web:create_app()"])

    def worker(self, name: str = "worker", concurrency: int = 2,
               loglevel: str = "INFO", queues: str | None = None,
               pool: str | None = None) -> subprocess.Popen:
        """A ``celery worker``; without ``queues`` it takes every queue (deals and webhooks)."""
        extra = (["-Q", queues] if queues else []) + (["--pool", pool] if pool else [])
        return self.start(name, [str(BIN / "celery"), "-A", "tasks.worker", "worker",
                                 "--loglevel", loglevel, "--concurrency", str(concurrency),
                                 "--hostname", f"{name}@%h", "--without-gossip",
                                 "--without-mingle", *extra])

    def beat(self, loglevel: str = "INFO") -> subprocess.Popen:
        return self.start("beat", [str(BIN / "celery"), "-A", "tasks.worker", "beat",
                                   "--loglevel", loglevel, "--schedule",
                                   str(self.logdir / "celerybeat-schedule")])

    def alive(self, name: str) -> bool:
        proc = self.running.get(name)
        return proc is not None and proc.poll() is None

    def stop(self, name: str, sig: int | None = None) -> None:
        proc = self.running.pop(name)
        if proc.poll() is None:
            if sig is None:
                proc.terminate()
            else:
                os.killpg(proc.pid, sig)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.logdir.glob("*.log"))
        )


@contextmanager
def supervised(server: RedisServer, procs: Processes) -> Iterator[None]:
    """Stop every process and the Redis server however the block ends, and show the
    processes' logs when it ends with an error."""
    try:
        yield
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        server.stop()


class InsurerSim:
    """``xinbao insurer-sim`` as a real process on a free port, with its admin endpoints."""

    def __init__(self, logdir: Path, *args: str, today: str | None = None):
        self.port = free_port()
        self.logdir = logdir
        self.args = list(args) + (["--today", today] if today else [])
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InsurerSim:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = open(self.logdir / f"insurer-sim-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "xinbao"), "insurer-sim", "--port", str(self.port), *self.args],
            cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
        )
        wait_until(self._healthy, 30, what=f"insurer simulator on port {self.port}")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"insurer simulator exited: {self.process.returncode}")
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def faults(self, timeout: float = 5, **changes: Any) -> dict:
        answer = requests.post(f"{self.url}/admin/faults", json=changes, timeout=timeout)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        requests.post(f"{self.url}/admin/reset", timeout=5).raise_for_status()

    def stats(self) -> dict[str, int]:
        return requests.get(f"{self.url}/admin/stats", timeout=5).json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost host would: no connection is closed politely."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def watching_limit(client: Any, exposure: str) -> Iterator[list[tuple[int, int]]]:
    """Sample a buyer exposure's reserved total and the sum of its holdings, read in one MULTI
    (one consistent moment), over and over until the block ends; yields the samples."""
    import threading

    from workflow import keys

    stop = threading.Event()
    samples: list[tuple[int, int]] = []

    def watch() -> None:
        while not stop.is_set():
            pipe = client.pipeline(transaction=True)
            pipe.get(keys.exposure_reserved_total(exposure))
            pipe.hvals(keys.exposure_reservations(exposure))
            total, held = pipe.execute()
            samples.append((int(total or 0), sum(int(c) for c in held)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield samples
    finally:
        stop.set()
        watcher.join()
