"""OpenAPI document, health, unknown routes and methods, and a broker that is down."""

from __future__ import annotations

import pytest

import tasks.pipeline
from tests.web.conftest import HAIXIN, auth, deal_body, error_of
from workflow import keys
from workflow.states import State
from workflow.store import DealStore

ROUTES = {
    "/api/v1/deals": {"get", "post"},
    "/api/v1/deals/{deal_id}": {"get"},
    "/api/v1/deals/{deal_id}/events": {"get"},
    "/api/v1/deals/{deal_id}/decision": {"post"},
    "/api/v1/deals/{deal_id}/withdraw": {"post"},
    "/api/v1/deals/{deal_id}/cancel": {"post"},
    "/api/v1/deals/{deal_id}/disbursement": {"post"},
    "/api/v1/deals/{deal_id}/disbursement/check": {"post"},
    "/api/v1/deals/{deal_id}/deferrals": {"post"},
    "/api/v1/deals/{deal_id}/repayments": {"post"},
    "/api/v1/deals/{deal_id}/notice": {"post"},
    "/api/v1/deals/{deal_id}/claim": {"post"},
    "/api/v1/deals/{deal_id}/recoveries": {"post"},
    "/api/v1/portfolio": {"get"},
    "/api/v1/events": {"get"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.append(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)
    return found


@pytest.fixture
def spec(client):
    rv = client.get("/api/v1/openapi.json")
    assert rv.status_code == 200
    assert rv.is_json
    return rv.get_json()


def test_openapi_document_is_valid(spec):
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    paths = spec["paths"]
    assert set(paths) == set(ROUTES)
    for path, methods in ROUTES.items():
        assert set(paths[path]) & HTTP_METHODS == methods, path
        for method in methods:
            operation = paths[path][method]
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert status.isdigit() and response["description"]
            if "{deal_id}" in path:
                params = [p for p in operation["parameters"] if p["in"] == "path"]
                assert [p["name"] for p in params] == ["deal_id"] and params[0]["required"]
    # Every reference resolves inside the document.
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec, []):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_openapi_documents_schemas_errors_and_security(spec):
    schemas = spec["components"]["schemas"]
    assert {"Error", "Deal", "DealRequest"} <= set(schemas)
    error = schemas["Error"]
    assert "error" in error["properties"] and "error" in error["required"]
    request = schemas["DealRequest"]
    assert set(request["required"]) == {"exporter_uscc", "policy_no", "buyer", "invoices",
                                        "requested_amount", "currency"}
    deal = schemas["Deal"]
    assert {"id", "state", "version", "amounts", "checks", "bank", "warnings"} <= set(
        deal["properties"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    post = spec["paths"]["/api/v1/deals"]["post"]
    assert {"202", "400", "401", "403", "409", "415", "422"} <= set(post["responses"])
    assert "Location" in post["responses"]["202"]["headers"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
               for p in post["parameters"])


def _resolve(spec, node):
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_money_is_documented_as_a_string_with_a_pattern(spec):
    schemas = spec["components"]["schemas"]
    request = schemas["DealRequest"]["properties"]
    money = [request["requested_amount"]]
    invoice = _resolve(spec, request["invoices"]["items"])
    money.append(invoice["properties"]["amount"])
    money.append(schemas["Decision"]["properties"]["amount"])
    for field in money:
        assert field["type"] == "string"
        assert field["pattern"]
        assert "number" not in str(field)
    rate = schemas["Decision"]["properties"]["annual_rate"]
    assert rate["type"] == "string" and rate["pattern"]
    amounts = _resolve(spec, schemas["Deal"]["properties"]["amounts"])
    assert all(p["type"] == "string" for p in amounts["properties"].values())


def test_openapi_needs_no_token(client):
    assert client.get("/api/v1/openapi.json").status_code == 200


# --- health and HTTP errors ---------------------------------------------------------------------


def test_healthz(client):
    rv = client.get("/healthz")
    assert rv.status_code == 200
    assert rv.get_json() == {"status": "alive"}


def test_healthz_is_liveness_only_while_readyz_says_redis_is_down(client, fake_redis, monkeypatch):
    def down():
        raise ConnectionError("redis went away")

    monkeypatch.setattr(fake_redis, "ping", down)
    # A Redis outage must not get web processes restarted: they are alive, just not ready.
    assert client.get("/healthz").status_code == 200
    rv = client.get("/readyz")
    assert rv.status_code == 503
    assert rv.get_json()["redis"].startswith("unavailable")


@pytest.mark.parametrize("url", ["/api/v1/nothing", "/api/v2/deals",
                                 "/api/v1/deals/abc/nothing"])
def test_unknown_url_is_404_json(client, url):
    error_of(client.get(url, headers=auth("haixin")), 404, "NOT_FOUND")


@pytest.mark.parametrize(("method", "url", "allowed"), [
    ("delete", "/api/v1/deals", {"GET", "POST"}),
    ("put", "/api/v1/deals/abc", {"GET"}),
    ("get", "/api/v1/deals/abc/decision", {"POST"}),
    ("get", "/api/v1/deals/abc/withdraw", {"POST"}),
    ("post", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_json(client, method, url, allowed):
    rv = getattr(client, method)(url, headers=auth("haixin"))
    error_of(rv, 405, "METHOD_NOT_ALLOWED")
    assert allowed <= {m.strip() for m in rv.headers["Allow"].split(",")}


# --- task dispatch failure ------------------------------------------------------------------------


def test_a_broker_failure_still_accepts_and_the_sweeper_owns_the_deal(
        api, app, fake_redis, monkeypatch, clock, settings):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.pipeline.drain_ready, "delay", broker_down)
    rv = api.submit()
    assert rv.status_code == 202
    deal_id = rv.get_json()["id"]
    store = DealStore(fake_redis)
    assert store.get(deal_id).state == State.SUBMITTED
    assert api.get(deal_id).get_json()["state"] == "submitted"
    assert [e["type"] for e in store.events(deal_id)] == ["submitted"]
    # The invoice is locked all the same: the accepted deal is the live one.
    assert store.receivable_holder(HAIXIN, "DE-0001", "INV-HX-1001") == deal_id
    assert fake_redis.zscore(keys.by_state(State.SUBMITTED), deal_id) is not None

    flow = app.extensions["xinbao"]
    assert flow.stranded() == []  # not overdue yet
    clock.advance(seconds=settings.stale_after_seconds + 1)
    assert flow.stranded() == [(deal_id, State.SUBMITTED)]
    assert flow.stranded() == []  # postponed one stale period: no tight loop

    # What the sweeper's re-dispatch runs picks it up from where it is.
    flow.verify(deal_id)
    assert api.get(deal_id).get_json()["state"] == "pending_bank"


def test_a_broker_failure_after_a_decline_leaves_the_deal_routing(
        api, app, fake_redis, monkeypatch, clock, settings):
    deal = api.create(deal_body())

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.pipeline.route_deal, "delay", broker_down)
    rv = api.decide(deal["id"], "boc", decision="decline", reason="no")
    assert rv.status_code == 200
    assert DealStore(fake_redis).get(deal["id"]).state == State.ROUTING
    clock.advance(seconds=settings.stale_after_seconds + 1)
    assert app.extensions["xinbao"].stranded() == [(deal["id"], State.ROUTING)]


def test_readyz_names_what_is_not_ready(client, fake_redis, monkeypatch):
    import time

    from workflow.heartbeats import record_beat, record_worker

    rv = client.get("/readyz")  # nothing heard from workers or beat yet
    assert rv.status_code == 503
    body = rv.get_json()
    assert body["status"] == "not ready" and body["redis"] == "ok" and body["broker"] == "ok"
    assert body["workers"] != "ok" and body["beat"] == "never heard from"
    now = time.time()
    record_worker(fake_redis, "celery@w1", now)
    record_beat(fake_redis, now)
    rv = client.get("/readyz")
    assert rv.status_code == 200, rv.get_json()
    assert rv.get_json()["worker_hosts"] == ["celery@w1"]
    record_beat(fake_redis, now - 3600)  # beat stopped an hour ago
    record_worker(fake_redis, "celery@w1", now - 3600)  # and the only worker too
    body = client.get("/readyz").get_json()
    assert body["beat"].startswith("last sweep sent") and body["workers"] != "ok"

    def down():
        raise ConnectionError("redis went away")

    monkeypatch.setattr(fake_redis, "ping", down)
    rv = client.get("/readyz")
    assert rv.status_code == 503 and rv.get_json()["redis"].startswith("unavailable")
