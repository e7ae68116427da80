"""End to end over HTTP with a real Redis, gunicorn, real Celery worker processes and beat."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests

from tests.support import BIN, ROOT, Processes, RedisServer, supervised, wait_until
from web import build_workflow
from workflow import keys
from workflow.deal import Application, Buyer, Invoice
from workflow.reference.records import exposure_of
from workflow.settings import load_settings

pytestmark = pytest.mark.integration


def days_from_today(days: int) -> str:
    """The ISO date ``days`` after today (UTC): ``xinbao load`` counts the demo's dates from it."""
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


HAIXIN = "91330200MA2AB1C2DJ"
EXPORTER = {"Authorization": "Bearer demo-exporter-haixin-0001"}
BOC = {"Authorization": "Bearer demo-bank-boc-nb-0001"}
ICBC = {"Authorization": "Bearer demo-bank-icbc-nb-0002"}
FAST = {"Authorization": "Bearer test-bank-fast-cny-0001"}

# A CNY business line for the deadline test: a bank that is first in line (cheapest) but
# decides within ~1 second, so beat's deadline sweep has to move the deal on.
EXTRA_REFERENCE = {
    "policies": [{
        "policy_no": "SIN-2026-9001", "exporter_uscc": HAIXIN, "status": "active",
        "start": "2026-01-01", "end": "2030-12-31", "coverage_ratio": "0.90",
        "premium_paid": True, "declaration_window_days": 15, "max_credit_days": 180,
    }],
    "limits": [{
        "limit_id": "LIM-CNY-1", "policy_no": "SIN-2026-9001", "buyer_code": "CN-HK-01",
        "buyer_name": "Harbour Trading Ltd", "country": "HK", "currency": "CNY",
        "amount": "9000000.00", "max_credit_days": 120, "effective": "2026-01-01",
        "expiry": "2030-12-31", "status": "active",
    }],
    "declarations": [
        {"policy_no": "SIN-2026-9001", "buyer_code": "CN-HK-01", "invoice_number": f"CNY-{i}",
         "shipment_date": "today-14", "declared_on": "today-13"} for i in range(1, 6)
    ],
    "banks": [{
        "bank_id": "FAST-CNY", "name": "Fast Deadline Bank", "currencies": ["CNY"],
        "min_amount": "1.00", "max_amount": "9000000.00", "max_tenor_days": 180,
        "advance_rate": "0.90", "annual_rate": "0.0100", "requires_whitelist": False,
        "decision_hours": "0.0003",
    }],
    "tokens": [{"token": "test-bank-fast-cny-0001", "bank_id": "FAST-CNY"}],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("stack")
    server = RedisServer(workdir / "redis", appendonly=True).start()
    env = {
        "REDIS_URL": server.url,
        "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
        "XINBAO_STALE_AFTER_SECONDS": "3",
        "LOG_LEVEL": "INFO",
    }
    # Each section a file contains replaces that section: the extra records go in one file
    # with the demo's, loaded over the demo file.
    document = json.loads((ROOT / "data" / "demo.json").read_text(encoding="utf-8"))
    for section, records in EXTRA_REFERENCE.items():
        document[section] = document.get(section, []) + records
    extra = workdir / "extra.json"
    extra.write_text(json.dumps(document))
    procs = Processes(env, workdir)
    with supervised(server, procs):
        for path in (ROOT / "data" / "demo.json", extra):
            # The console script, for real: `xinbao load FILE.json`.
            subprocess.run([str(BIN / "xinbao"), "load", str(path)],
                           env={**env, "PATH": str(BIN)}, check=True, capture_output=True)
        base = procs.start_stack()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        yield {"base": base, "redis": client, "procs": procs, "env": env}



def application(number: str, amount: str = "100000.00", buyer: str = "DE-0001",
                country: str = "DE", currency: str = "USD", policy: str = "SIN-2026-0001",
                shipped: int = -14, requested: str | None = None) -> dict:
    return {
        "exporter_uscc": HAIXIN,
        "policy_no": policy,
        "buyer": {"code": buyer, "name": "Buyer", "country": country},
        "invoices": [{"number": number, "amount": amount, "currency": currency,
                      "issue_date": days_from_today(-23),
                      "shipment_date": days_from_today(shipped),
                      "due_date": days_from_today(46)}],
        "requested_amount": requested or amount,
        "currency": currency,
    }


def submit(stack: dict, body: dict) -> dict:
    response = requests.post(f"{stack['base']}/api/v1/deals", json=body, headers=EXPORTER,
                             timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def await_state(stack: dict, deal_id: str, *states: str, bank: str | None = None,
                timeout: float = 30) -> dict:
    def reached():
        deal = requests.get(f"{stack['base']}/api/v1/deals/{deal_id}", headers=EXPORTER,
                            timeout=5).json()
        if deal["state"] in states and (bank is None or (deal["bank"] or {}).get("bank_id")
                                        == bank):
            return deal
        return None

    try:
        return wait_until(reached, timeout, interval=0.2, what=f"{deal_id} to reach {states}")
    except AssertionError:
        print(stack["procs"].logs())
        raise


def events(stack: dict, deal_id: str) -> list[dict]:
    return requests.get(f"{stack['base']}/api/v1/deals/{deal_id}/events", headers=EXPORTER,
                        timeout=5).json()["events"]


def test_submitted_deal_is_verified_and_offered_then_approved(stack):
    deal = submit(stack, application("INV-HX-1001"))
    pending = await_state(stack, deal["id"], "pending_bank")
    assert pending["bank"]["bank_id"] == "BOC-NB"  # cheapest bank, exporter whitelisted
    assert pending["bank"]["deadline"]
    assert pending["amounts"]["insured"] == "90000.00"
    assert pending["amounts"]["eligible"] == "81000.00"  # 100,000 x 90% cover x 90% advance
    assert set(pending["checks"].values()) == {"ok"}

    queue = requests.get(f"{stack['base']}/api/v1/deals?state=pending_bank", headers=BOC,
                         timeout=5).json()
    assert deal["id"] in [d["id"] for d in queue["items"]]

    decided = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                            json={"decision": "approve", "amount": "80000.00",
                                  "annual_rate": "0.0420"}, headers=BOC, timeout=5)
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"
    again = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                          json={"decision": "approve"}, headers=BOC, timeout=5)
    assert again.status_code == 409  # the stale double-click
    types = [e["type"] for e in events(stack, deal["id"])]
    assert types == ["submitted", "verification_started", "verified", "offered_to_bank",
                     "approved"]


def test_declined_deal_is_rerouted_to_the_next_bank(stack):
    deal = submit(stack, application("INV-HX-1002"))
    await_state(stack, deal["id"], "pending_bank", bank="BOC-NB")
    declined = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                             json={"decision": "decline", "reason": "sector appetite"},
                             headers=BOC, timeout=5)
    assert declined.status_code == 200, declined.text
    rerouted = await_state(stack, deal["id"], "pending_bank", bank="ICBC-NB")
    assert rerouted["offered_banks"] == ["BOC-NB", "ICBC-NB"]
    # BOC no longer holds it: its queue is empty of it and a late decision is refused.
    late = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                         json={"decision": "approve"}, headers=BOC, timeout=5)
    assert late.status_code == 409
    approved = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                             json={"decision": "approve"}, headers=ICBC, timeout=5)
    assert approved.json()["state"] == "approved"


def test_missed_deadline_moves_the_deal_on(stack):
    body = application("CNY-1", amount="500000.00", buyer="CN-HK-01", country="HK",
                       currency="CNY", policy="SIN-2026-9001")
    deal = submit(stack, body)
    # FAST-CNY is offered first, lets ~1 s pass, and beat's sweep routes it to BOC-NB.
    moved = await_state(stack, deal["id"], "pending_bank", bank="BOC-NB")
    assert moved["offered_banks"] == ["FAST-CNY", "BOC-NB"]
    log = events(stack, deal["id"])
    missed = [e for e in log if e["type"] == "deadline_missed"]
    assert len(missed) == 1
    assert missed[0]["by"] == "sweeper" and missed[0]["why"] == ["BANK_DEADLINE_MISSED"]
    late = requests.post(f"{stack['base']}/api/v1/deals/{deal['id']}/decision",
                         json={"decision": "approve"}, headers=FAST, timeout=5)
    assert late.status_code == 409


def test_deal_whose_task_was_lost_is_picked_up_by_the_sweeper(stack):
    # Commit a deal without publishing its task: exactly what a crash between the commit
    # and the publish leaves behind.
    client = stack["redis"]
    flow = build_workflow(client, load_settings(stack["env"]))
    app = Application(HAIXIN, "SIN-2026-0001", Buyer("DE-0001", "Buyer", "DE"),
                      (Invoice.from_wire(application("INV-HX-1003")["invoices"][0]),),
                      __import__("decimal").Decimal("100000.00"), "USD")
    deal = flow.submit(app).deal
    assert deal.state == "submitted"
    recovered = await_state(stack, deal.id, "pending_bank", timeout=40)
    assert recovered["bank"]["bank_id"] == "BOC-NB"


def test_concurrent_deals_never_overcommit_a_buyer_limit(stack):
    # Buyer US-0042 has a USD 200,000 limit: four 50,000 invoices fit, the other six do not.
    bodies = [application(f"INV-HX-20{i:02d}", amount="50000.00", buyer="US-0042",
                          country="US", shipped=-19) for i in range(1, 11)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        deals = list(pool.map(lambda b: submit(stack, b), bodies))
    finals = [await_state(stack, d["id"], "pending_bank", "rejected") for d in deals]
    passed = [d for d in finals if d["state"] == "pending_bank"]
    rejected = [d for d in finals if d["state"] == "rejected"]
    assert len(passed) == 4
    assert all(d["reasons"] == ["LIMIT_INSUFFICIENT"] for d in rejected)
    us = keys.exposure_reserved_total(exposure_of("SIN-2026-0001", "US-0042", "USD"))
    assert stack["redis"].get(us) == "20000000"  # cents


def test_same_invoice_submitted_concurrently_makes_one_deal(stack):
    body = application("INV-HX-1010")

    def post(_):
        return requests.post(f"{stack['base']}/api/v1/deals", json=body, headers=EXPORTER,
                             timeout=10).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(post, range(12)))
    assert sorted(codes) == [202] + [409] * 11


def test_readiness_hears_the_real_worker_and_beat(stack):
    """/readyz turns ready once the real worker has run a sweep the real beat sent."""

    def ready():
        answer = requests.get(f"{stack['base']}/readyz", timeout=5)
        return answer.json() if answer.status_code == 200 else None

    body = wait_until(ready, 30, interval=0.2, what="/readyz to answer ready")
    assert body["redis"] == body["broker"] == body["workers"] == body["beat"] == "ok"
    assert body["worker_hosts"]
