"""Browser tests' fixtures: a live stack (private Redis, the demo data, gunicorn, Celery worker
and beat, the real clock) and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import (
    BIN,
    ROOT,
    Processes,
    RedisServer,
    chromium_path,
    require_browser_or_skip,
    supervised,
)

# Haixin's invoices to buyer DE-0001 that data/demo.json declares: each finances one deal, so
# the tests sharing the stack take them in turn. The buyer's USD 500,000 limit holds five
# USD 100,000 invoices pending or approved at once (90 % of each is reserved).
FREE_INVOICES = [f"INV-HX-{n}" for n in range(1001, 1021)]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

SCREENSHOTS = pytest.StashKey[Path]()


@dataclass
class LiveStack:
    """The running system: its web address, a client on its Redis and its processes."""

    base: str
    redis: redis.Redis
    procs: Processes
    env: dict[str, str]
    invoices: list[str] = field(default_factory=lambda: list(FREE_INVOICES))

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def fresh_invoices(self, count: int = 1) -> list[str]:
        """Declared invoice numbers no test has submitted yet (each one finances once)."""
        if count > len(self.invoices):
            raise AssertionError("the demo declares no more free invoices for DE-0001")
        taken, self.invoices = self.invoices[:count], self.invoices[count:]
        return taken



@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (or XINBAO_CHROMIUM): skips without it, fails under CI."""
    path = chromium_path()
    if path is None:
        require_browser_or_skip(
            "no Chromium: install Debian's chromium (apt-get install chromium fonts-wqy-microhei)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_browser_or_skip("Playwright is not installed: make install")
    return path


@pytest.fixture(scope="session")
def live_stack(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The whole system as `make run` starts it, on a private redis-server and a free port.

    The demo data is loaded by the `xinbao load` console script, so its relative dates count
    from today and the app's clock is the real one.
    """
    workdir: Path = tmp_path_factory.mktemp("live")
    server = RedisServer(workdir / "redis").start()
    env = {"REDIS_URL": server.url, "LOG_LEVEL": "WARNING", "XINBAO_ENV": "development"}
    procs = Processes(env, workdir)
    with supervised(server, procs):
        subprocess.run(
            [str(BIN / "xinbao"), "load", str(ROOT / "data" / "demo.json")],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        base = procs.start_stack()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            yield LiveStack(base=base, redis=client, procs=procs, env=env)
        finally:
            client.close()


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    """One headless Chromium for the session (each test gets its own context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        instance = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """``new_page(viewport=DESKTOP, locale="en-US")``: a page in a fresh context (no cookies),
    closed after the test. Call it once per user the test signs in."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] | None = None, locale: str = "en-US") -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, locale=locale)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Any) -> Any:
    """A desktop-sized page in a fresh context."""
    return new_page()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the screenshots go to: $XINBAO_SCREENSHOTS, else a temporary folder; the
    test run's summary names it."""
    wanted = os.environ.get("XINBAO_SCREENSHOTS")
    folder = Path(wanted).resolve() if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOTS] = folder
    return folder


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None:
        count = len(list(folder.glob("*.png")))
        terminalreporter.write_line(f"browser tests: {count} screenshots in {folder}")
