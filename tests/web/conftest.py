"""Fixtures of the JSON API tests: the Flask app on fakeredis with Celery eager, tokens, bodies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DEMO_NOW, Clock
from web import create_app
from workflow.reference import ReferenceData, store_reference
from workflow.settings import Settings

EAGER = {"task_always_eager": True, "broker_url": "memory://"}

HAIXIN = "91330200MA2AB1C2DJ"
DONGFANG = "91330200MA2CD3E4F9"

TOKENS = {
    "haixin": "demo-exporter-haixin-0001",
    "dongfang": "demo-exporter-dongfang-0002",
    "nanhai": "demo-exporter-nanhai-0003",
    "boc": "demo-bank-boc-nb-0001",
    "icbc": "demo-bank-icbc-nb-0002",
    "ccb": "demo-bank-ccb-nb-0003",
}


def auth(who: str) -> dict[str, str]:
    """The Authorization header of one demo principal ("haixin", "boc"...)."""
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def invoice(number: str = "INV-HX-1001", **overrides: Any) -> dict[str, Any]:
    """A wire invoice of Haixin's to DE-0001, declared in the demo data."""
    raw = {
        "number": number,
        "amount": "100000.00",
        "currency": "USD",
        "issue_date": "2026-11-01",
        "shipment_date": "2026-11-10",
        "due_date": "2027-01-09",
    }
    raw.update(overrides)
    return raw


def deal_body(*numbers: str, **overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/deals body: Haixin -> Müller (DE-0001), USD, 80,000 asked."""
    body: dict[str, Any] = {
        "exporter_uscc": HAIXIN,
        "policy_no": "SIN-2026-0001",
        "buyer": {"code": "DE-0001", "name": "Müller Handels GmbH", "country": "DE"},
        "invoices": [invoice(n) for n in (numbers or ("INV-HX-1001",))],
        "requested_amount": "80000.00",
        "currency": "USD",
    }
    body.update(copy.deepcopy(overrides))
    return body


def dongfang_body(number: str = "INV-DF-3001", **overrides: Any) -> dict[str, Any]:
    """A valid body of Dongfang's (not whitelisted): GB-0007, EUR 100,000, 70,000 asked."""
    body = deal_body(
        exporter_uscc=DONGFANG,
        policy_no="SIN-2026-0002",
        buyer={"code": "GB-0007", "name": "Thames Retail Ltd", "country": "GB"},
        invoices=[invoice(number, currency="EUR", shipment_date="2026-11-01",
                          due_date="2027-01-15")],
        requested_amount="70000.00",
        currency="EUR",
    )
    body.update(copy.deepcopy(overrides))
    return body


def error_of(rv: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``rv`` is the one JSON error shape with ``status`` (and ``code``); return error."""
    assert rv.status_code == status, rv.get_data(as_text=True)
    assert rv.is_json, rv.headers.get("Content-Type")
    body = rv.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    for name, messages in error["fields"].items():
        assert isinstance(name, str)
        assert isinstance(messages, list) and messages
        assert all(isinstance(m, str) and m for m in messages)
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture
def clock() -> Clock:
    """The workflow's clock, at the demo day; tests move it with ``clock.advance(...)``."""
    return Clock(DEMO_NOW)


@pytest.fixture
def app(fake_redis: Any, demo_reference: ReferenceData, settings: Settings,
        clock: Clock) -> Iterator[Flask]:
    """The app on fakeredis with the demo data loaded and Celery tasks run in-process."""
    store_reference(fake_redis, demo_reference)
    application = create_app(settings, redis_client=fake_redis, celery=dict(EAGER))
    application.config["TESTING"] = True
    application.extensions["xinbao"].clock = clock
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Api:
    """Small helpers over the test client for the common calls."""

    def __init__(self, client: FlaskClient, clock: Clock):
        self.client, self.clock = client, clock

    def submit(self, body: dict | None = None, who: str = "haixin", key: str | None = None):
        headers = auth(who)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post("/api/v1/deals", json=body or deal_body(), headers=headers)

    def create(self, body: dict | None = None, who: str = "haixin") -> dict[str, Any]:
        """Submit, expect 202, return the deal as its owner now reads it."""
        rv = self.submit(body, who)
        assert rv.status_code == 202, rv.get_json()
        return self.get(rv.get_json()["id"], who).get_json()

    def get(self, deal_id: str, who: str = "haixin"):
        return self.client.get(f"/api/v1/deals/{deal_id}", headers=auth(who))

    def events(self, deal_id: str, who: str = "haixin"):
        return self.client.get(f"/api/v1/deals/{deal_id}/events", headers=auth(who))

    def decide(self, deal_id: str, who: str, **body: Any):
        return self.client.post(f"/api/v1/deals/{deal_id}/decision", json=body,
                                headers=auth(who))

    def withdraw(self, deal_id: str, who: str = "haixin", **kwargs: Any):
        return self.client.post(f"/api/v1/deals/{deal_id}/withdraw", headers=auth(who),
                                **kwargs)

    def cancel(self, deal_id: str, who: str, **body: Any):
        return self.client.post(f"/api/v1/deals/{deal_id}/cancel", json=body,
                                headers=auth(who))

    def list(self, who: str = "haixin", **query: Any):
        return self.client.get("/api/v1/deals", query_string=query, headers=auth(who))


@pytest.fixture
def api(client: FlaskClient, clock: Clock) -> Api:
    return Api(client, clock)


@pytest.fixture
def into_fake_redis(monkeypatch: pytest.MonkeyPatch, fake_redis: Any) -> list:
    """``redis.Redis.from_url`` in web.cli hands out fake_redis; returns the URLs asked for."""
    from web import cli

    asked = []

    def from_url(url: str, **kwargs: Any) -> Any:
        asked.append((url, kwargs))
        return fake_redis

    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(from_url))
    return asked
