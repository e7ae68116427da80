"""GET /metrics: exact values after a scripted run, every process's values in multiprocess
mode, and who may read it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT
from tests.web.conftest import EAGER, auth, deal_body, invoice
from web import create_app
from workflow.reference import store_reference

Samples = dict[tuple[str, frozenset], float]


def scrape(client: Any, headers: dict | None = None) -> Samples:
    rv = client.get("/metrics", headers=headers or {})
    assert rv.status_code == 200, rv.get_data(as_text=True)
    assert rv.mimetype == "text/plain"
    out: Samples = {}
    for family in text_string_to_metric_families(rv.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``{label value: sample value}`` of one metric's samples."""
    out: dict[str, float] = defaultdict(float)
    for (sample, labels), number in samples.items():
        if sample == name:
            out[dict(labels)[label]] += number
    return dict(out)


def delta(after: Samples, before: Samples, name: str) -> dict[frozenset, float]:
    """What a run added to each series of a counter (event metrics live for the process)."""
    keys = {k for k in after if k[0] == name} | {k for k in before if k[0] == name}
    changes = {k[1]: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {labels: d for labels, d in changes.items() if d}


def test_values_after_a_scripted_run(api, client, clock):
    before = scrape(client)
    good = [api.create(deal_body(f"INV-HX-100{n}")) for n in (1, 2, 3)]
    rejected = [
        api.submit(deal_body("INV-HX-2001", policy_no="SIN-2026-0002")),
        api.submit(deal_body(invoices=[invoice("INV-HX-3001", due_date="2027-12-30")])),
    ]
    assert all(rv.status_code == 202 for rv in rejected)
    assert [api.get(d["id"]).get_json()["state"] for d in good] == ["pending_bank"] * 3
    clock.advance(hours=2)
    approve = api.decide(good[0]["id"], "boc", decision="approve", amount="75000.00",
                         annual_rate="0.0400", officer="wang")
    assert approve.status_code == 200, approve.get_json()
    assert api.decide(good[1]["id"], "boc", decision="decline", reason="no").status_code == 200
    assert api.withdraw(good[2]["id"]).status_code == 200
    after = scrape(client)

    # Deals by state and queues: read from Redis, so absolute.
    assert by_label(after, "xinbao_deals", "state") == {
        "submitted": 0, "verifying": 0, "on_hold": 0, "routing": 0, "pending_bank": 1,
        "approved": 1, "disbursed": 0, "overdue": 0, "claim_filed": 0, "rejected": 2,
        "unplaced": 0, "repaid": 0, "indemnified": 0, "claim_rejected": 0, "withdrawn": 1,
        "cancelled": 0,
    }
    assert by_label(after, "xinbao_bank_queue_depth", "bank_id") == {
        "BOC-NB": 0, "ICBC-NB": 1, "CCB-NB": 0}
    assert value(after, "xinbao_ready_queue_depth") == 0
    assert value(after, "xinbao_store_up") == 1

    # Event metrics: what this run added.
    t = "xinbao_transitions_total"
    assert delta(after, before, t) == {
        frozenset({("from_state", a), ("to_state", b)}): n
        for a, b, n in (
            ("none", "submitted", 5), ("submitted", "verifying", 5),
            ("verifying", "routing", 3), ("verifying", "rejected", 2),
            ("routing", "pending_bank", 4), ("pending_bank", "approved", 1),
            ("pending_bank", "routing", 1), ("pending_bank", "withdrawn", 1),
        )
    }
    assert delta(after, before, "xinbao_verifications_total") == {
        frozenset({("outcome", "verified")}): 3, frozenset({("outcome", "rejected")}): 2}
    assert delta(after, before, "xinbao_verification_reasons_total") == {
        frozenset({("outcome", "rejected"), ("reason", r)}): n
        for r, n in (("POLICY_NOT_FOUND", 1), ("LIMIT_NOT_FOUND", 1),
                     ("SHIPMENT_NOT_DECLARED", 2), ("CREDIT_PERIOD_EXCEEDED", 1))
    }
    # Three deals left pending_bank two hours (of the workflow's clock) after they got there.
    pending = frozenset({("state", "pending_bank")})
    assert delta(after, before, "xinbao_state_duration_seconds_count")[pending] == 3
    assert delta(after, before, "xinbao_state_duration_seconds_sum")[pending] == 3 * 7200
    le_hour = frozenset({("state", "pending_bank"), ("le", "3600.0")})
    assert le_hour not in delta(after, before, "xinbao_state_duration_seconds_bucket")
    # One drain per submission, one route after the decline (Celery eager: same signals).
    runs = delta(after, before, "xinbao_task_duration_seconds_count")
    assert runs == {
        frozenset({("task", "xinbao.drain_ready"), ("state", "SUCCESS")}): 5,
        frozenset({("task", "xinbao.route"), ("state", "SUCCESS")}): 1,
    }


def test_retries_and_failures_of_tasks_are_counted(app, client, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tasks import pipeline

    calls = []

    def flaky(deal_id: str):
        calls.append(deal_id)
        if len(calls) == 1:
            raise RedisConnectionError("blip")
        raise RuntimeError("bug")

    monkeypatch.setattr(app.extensions["xinbao"], "route", flaky)
    before = scrape(client)
    with app.app_context():
        pipeline.route_deal.apply(args=("d1",))  # retried once (eagerly), then fails
    assert calls == ["d1", "d1"]
    after = scrape(client)
    name = frozenset({("task", "xinbao.route")})
    assert delta(after, before, "xinbao_task_retries_total") == {name: 1}
    assert delta(after, before, "xinbao_task_failures_total") == {name: 1}


def test_a_dead_redis_still_answers_with_the_event_metrics(app, client, monkeypatch):
    def down(*_: Any, **__: Any):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(app.extensions["redis"], "pipeline", down)
    samples = scrape(client)
    assert value(samples, "xinbao_store_up") == 0
    assert not any(name == "xinbao_deals" for name, _ in samples)


WRITER = textwrap.dedent("""
    import sys
    from workflow.deal import Deal
    from workflow.metrics import observe_transition
    deal = Deal({"id": "d", "state": "pending_bank", "version": "3",
                 "state_at": "2026-01-01T00:00:00+00:00"})
    for _ in range(int(sys.argv[1])):
        observe_transition(deal, deal, {"from": "pending_bank", "to": "approved",
                                        "at": "2026-01-01T01:00:00+00:00"})
""")


def test_multiprocess_mode_adds_up_every_process(tmp_path, client, monkeypatch):
    mp = tmp_path / "prom"
    mp.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(mp), "PATH": "/usr/bin:/bin"}
    for count in (2, 3):  # two processes, as two gunicorn or Celery pool workers
        subprocess.run([sys.executable, "-c", WRITER, str(count)], cwd=ROOT, env=env,
                       check=True, timeout=60)
    assert len(list(mp.glob("*.db"))) >= 2, "each process writes its own file"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(mp))
    samples = scrape(client)
    assert value(samples, "xinbao_transitions_total",
                 from_state="pending_bank", to_state="approved") == 5
    assert value(samples, "xinbao_state_duration_seconds_count", state="pending_bank") == 5
    assert value(samples, "xinbao_state_duration_seconds_sum", state="pending_bank") == 5 * 3600
    # The state read from Redis is part of the same scrape.
    assert value(samples, "xinbao_store_up") == 1


# --- who may read it ---------------------------------------------------------------------------


def _app(fake_redis, demo_reference, settings, **changes):
    store_reference(fake_redis, demo_reference)
    app = create_app(dataclasses.replace(settings, **changes), redis_client=fake_redis,
                     celery=dict(EAGER))
    return app.test_client()


def test_with_a_token_only_its_bearer_reads_the_metrics(fake_redis, demo_reference, settings):
    client = _app(fake_redis, demo_reference, settings, metrics_token="s3cret-metrics")
    for headers in ({}, {"Authorization": "Bearer wrong"}, auth("boc"),
                    {"Authorization": "Basic s3cret-metrics"}):
        rv = client.get("/metrics", headers=headers)
        assert rv.status_code == 401, headers
        assert "xinbao_" not in rv.get_data(as_text=True)
        assert rv.headers["WWW-Authenticate"].startswith("Bearer")
    assert value(scrape(client, {"Authorization": "Bearer s3cret-metrics"}),
                 "xinbao_store_up") == 1


def test_production_without_a_token_refuses_the_metrics(fake_redis, demo_reference, settings):
    client = _app(fake_redis, demo_reference, settings, env="production",
                  secret_key="x" * 40)
    rv = client.get("/metrics")
    assert rv.status_code == 403
    assert rv.get_json()["error"] == "METRICS_DISABLED"


def test_development_without_a_token_is_open(client):
    assert value(scrape(client), "xinbao_store_up") == 1


def test_webhook_deliveries_per_webhook_and_outcome(client, fake_redis):
    from workflow import keys
    from workflow.webhooks import add_webhook

    boc = add_webhook(fake_redis, "BOC-NB", "https://boc.example/hooks", now=0.0)
    icbc = add_webhook(fake_redis, "ICBC-NB", "https://icbc.example/hooks", now=0.0)
    fake_redis.hset(keys.webhook_stats(boc.webhook_id),
                    mapping={"delivered": 7, "failed_attempts": 3, "dead": 1})
    fake_redis.hset(keys.webhook(boc.webhook_id), "consecutive_failures", 2)
    fake_redis.zadd(keys.webhook_order(boc.webhook_id), {"e1": 1, "e2": 2})
    samples = scrape(client)
    ids = {"webhook_id": boc.webhook_id, "bank_id": "BOC-NB"}
    assert value(samples, "xinbao_webhook_deliveries_total", **ids, outcome="delivered") == 7
    assert value(samples, "xinbao_webhook_deliveries_total", **ids, outcome="failed") == 3
    assert value(samples, "xinbao_webhook_deliveries_total", **ids, outcome="dead") == 1
    assert value(samples, "xinbao_webhook_pending", **ids) == 2
    assert value(samples, "xinbao_webhook_consecutive_failures", **ids) == 2
    other = {"webhook_id": icbc.webhook_id, "bank_id": "ICBC-NB"}
    assert ("xinbao_webhook_deliveries_total",
            frozenset({**other, "outcome": "delivered"}.items())) in samples
    assert value(samples, "xinbao_webhook_deliveries_total", **other, outcome="delivered") == 0
