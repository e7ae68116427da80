"""Shared fixtures: a private real Redis, fakeredis, the demo reference data, a workflow factory.

``make_application`` and ``make_invoice`` are plain functions (``from tests.conftest import
make_application``) so every test package builds applications the same way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fakeredis
import pytest
import redis

from tests.support import RedisServer, require_real_redis_or_skip
from workflow.deal import Application, Buyer, Invoice
from workflow.demo import expand_relative_dates_json
from workflow.gateway import ReferenceDataInsurer
from workflow.pipeline import Workflow
from workflow.reference import (
    ReferenceData,
    ReferenceRepository,
    parse_reference_json,
    store_reference,
)
from workflow.reference.records import exposure_of
from workflow.settings import Settings, load_settings
from workflow.store import DealStore

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILE = ROOT / "data" / "demo.json"

# The day the tests load the demo data on: its relative dates ("today-14") count from here, so
# declared shipments are on 2026-11-10 and the README's invoice is due 2027-01-09.
DEMO_NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEMO_TODAY = DEMO_NOW.date()

# Exporters in data/demo.json.
HAIXIN = "91330200MA2AB1C2DJ"  # on the active NB-2026-TONGBAO whitelist; policy SIN-2026-0001
DONGFANG = "91330200MA2CD3E4F9"  # on no whitelist; policy SIN-2026-0002 (buyer GB-0007, EUR)
NANHAI = "91440300MA5FG6H7JX"  # only on the lapsed SZ-2025-TONGBAO list; premium unpaid

# What the demo limits' reservations count against (see BuyerLimit.exposure).
DE_EXPOSURE = exposure_of("SIN-2026-0001", "DE-0001", "USD")  # limit LIM-HX-DE0001
GB_EXPOSURE = exposure_of("SIN-2026-0002", "GB-0007", "EUR")  # limit LIM-DF-GB0007

# The test database used when the tests run against an external REDIS_URL.
EXTERNAL_TEST_DB = 15


def demo_text(today: date = DEMO_TODAY) -> str:
    """data/demo.json as loaded on ``today``: its relative dates made ISO dates."""
    return expand_relative_dates_json(DEMO_FILE.read_text(encoding="utf-8"), today)


# --- clocks -----------------------------------------------------------------------------------


class Clock:
    """An injectable clock (``clock()`` returns now) that tests move by hand."""

    def __init__(self, now: datetime = DEMO_NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# --- application builders -----------------------------------------------------------------------

_INVOICE_FIELDS = ("number", "amount", "currency", "issue_date", "shipment_date", "due_date",
                   "bill_of_lading", "customs_declaration")


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def make_invoice(**overrides: Any) -> Invoice:
    """An invoice of Haixin's to buyer DE-0001, declared in the demo data (INV-HX-1001).

    Amounts may be given as strings and dates as ISO strings.
    """
    raw: dict[str, Any] = {
        "number": "INV-HX-1001",
        "amount": "100000.00",
        "currency": "USD",
        "issue_date": "2026-11-01",
        "shipment_date": "2026-11-10",
        "due_date": "2027-01-09",
        "bill_of_lading": None,
        "customs_declaration": None,
    }
    unknown = set(overrides) - set(raw)
    if unknown:
        raise TypeError(f"unknown invoice fields {sorted(unknown)}")
    raw.update(overrides)
    return Invoice(
        number=raw["number"],
        amount=Decimal(str(raw["amount"])),
        currency=raw["currency"],
        issue_date=_as_date(raw["issue_date"]),
        shipment_date=_as_date(raw["shipment_date"]),
        due_date=_as_date(raw["due_date"]),
        bill_of_lading=raw["bill_of_lading"],
        customs_declaration=raw["customs_declaration"],
    )


def make_application(**overrides: Any) -> Application:
    """A valid demo application: Haixin -> Müller (DE-0001), one USD 100,000 invoice, 80,000 asked.

    Overrides: any ``Application`` field (``buyer`` may be a ``Buyer`` or a dict, ``invoices`` a
    list of ``Invoice`` or of dicts for :func:`make_invoice`, ``requested_amount`` a string);
    invoice fields (``number``, ``amount``, ``shipment_date``...) change the single default
    invoice when ``invoices`` is not given.
    """
    invoice_overrides = {k: overrides.pop(k) for k in _INVOICE_FIELDS if k in overrides}
    if "currency" in invoice_overrides:
        overrides.setdefault("currency", invoice_overrides["currency"])
    buyer = overrides.pop("buyer", Buyer("DE-0001", "Müller Handels GmbH", "DE"))
    if isinstance(buyer, dict):
        buyer = Buyer(**buyer)
    invoices = overrides.pop("invoices", None)
    if invoices is None:
        invoices = [make_invoice(**invoice_overrides)]
    elif invoice_overrides:
        raise TypeError("give invoice fields or invoices, not both")
    invoices = tuple(inv if isinstance(inv, Invoice) else make_invoice(**inv) for inv in invoices)
    fields: dict[str, Any] = {
        "exporter_uscc": HAIXIN,
        "policy_no": "SIN-2026-0001",
        "requested_amount": "80000.00",
        "currency": "USD",
    }
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"unknown application fields {sorted(unknown)}")
    fields.update(overrides)
    return Application(
        exporter_uscc=fields["exporter_uscc"],
        policy_no=fields["policy_no"],
        buyer=buyer,
        invoices=invoices,
        requested_amount=Decimal(str(fields["requested_amount"])),
        currency=fields["currency"],
    )


def dongfang_application(**overrides: Any) -> Application:
    """A valid application of Dongfang's (not whitelisted): GB-0007, EUR 100,000 invoice."""
    base: dict[str, Any] = {
        "exporter_uscc": DONGFANG,
        "policy_no": "SIN-2026-0002",
        "buyer": Buyer("GB-0007", "Thames Retail Ltd", "GB"),
        "number": "INV-DF-3001",
        "currency": "EUR",
        "shipment_date": "2026-11-01",
        "due_date": "2027-01-15",
        "requested_amount": "70000.00",
    }
    if "invoices" in overrides:
        for name in _INVOICE_FIELDS:
            base.pop(name, None)
    base.update(overrides)
    return make_application(**base)


# --- Redis ----------------------------------------------------------------------------------------


def _with_db(url: str, db: int) -> str:
    """``url`` pointing at database ``db`` (redis://, rediss:// and unix:// URLs)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for tests: a private redis-server if installed, else $REDIS_URL (db 15)."""
    if shutil.which("redis-server"):
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    external = os.environ.get("REDIS_URL")
    if external:
        yield _with_db(external, EXTERNAL_TEST_DB)
        return
    require_real_redis_or_skip(
        "no real Redis: redis-server is not on PATH and REDIS_URL is not set"
    )


@pytest.fixture
def real_redis(redis_server_url: str) -> Iterator[redis.Redis]:
    """A client (decode_responses=True) on the real test Redis, its database flushed around."""
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    """A fresh in-process fakeredis (its own server, so nothing is shared between tests)."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["fake", "real"])
def any_redis(request: pytest.FixtureRequest) -> redis.Redis:
    """fake_redis, then real_redis: store and pipeline tests run on both."""
    return request.getfixturevalue(f"{request.param}_redis")


# --- domain fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_reference() -> ReferenceData:
    """data/demo.json loaded on DEMO_TODAY, parsed and validated."""
    return parse_reference_json(demo_text())


@pytest.fixture
def settings() -> Settings:
    """Settings with short periods so schedules are easy to step through."""
    return load_settings({"XINBAO_STALE_AFTER_SECONDS": "30", "XINBAO_HOLD_RETRY_SECONDS": "60"})


@pytest.fixture
def make_workflow(
    demo_reference: ReferenceData, settings: Settings
) -> Callable[..., Workflow]:
    """``make_workflow(redis, clock=None)``: a Workflow on ``redis`` with the demo data loaded.

    Without a clock the workflow gets a :class:`Clock` at DEMO_NOW (``wf.clock.advance(...)``).
    """

    def factory(client: Any, clock: Callable[[], datetime] | None = None) -> Workflow:
        store_reference(client, demo_reference)
        reference = ReferenceRepository(client)
        return Workflow(
            store=DealStore(client),
            reference=reference,
            insurer=ReferenceDataInsurer(reference),
            settings=settings,
            clock=clock if clock is not None else Clock(),
        )

    return factory
