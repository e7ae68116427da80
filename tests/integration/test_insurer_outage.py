"""An insurer outage with real processes: the HTTP adapter against `xinbao insurer-sim`."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
import redis
import requests

from tests.stress.chaos_stack import ONCE_DESPITE_HOLDS, DealRecord, Tally, audit
from tests.support import (
    BIN,
    ROOT,
    InsurerSim,
    Processes,
    RedisServer,
    supervised,
    wait_until,
)
from web import build_workflow
from web.cli import load_file
from web.schemas import DealRequestSchema
from workflow.settings import SIM_API_KEY, load_settings
from workflow.states import State

pytestmark = pytest.mark.integration

HAIXIN = "91330200MA2AB1C2DJ"
EXPORTER = {"Authorization": "Bearer demo-exporter-haixin-0001"}
DEMO = ROOT / "data" / "demo.json"
HOLD_SECONDS = 2


def day(offset: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


def body(number: str, buyer: str, country: str, shipped: int, amount: str = "20000.00") -> dict:
    return {
        "exporter_uscc": HAIXIN,
        "policy_no": "SIN-2026-0001",
        "buyer": {"code": buyer, "name": "Buyer", "country": country},
        "invoices": [
            {
                "number": number,
                "amount": amount,
                "currency": "USD",
                "issue_date": day(-23),
                "shipment_date": day(shipped),
                "due_date": day(46),
            }
        ],
        "requested_amount": amount,
        "currency": "USD",
    }


# 30 deals on the demo data, none competing for room (the outcomes do not depend on order):
# 20 + 5 declared invoices within their buyers' limits, 3 undeclared ones, and 2 to a buyer
# with an overdue and no limit.
BATCH_A = [body(f"INV-HX-10{i:02d}", "DE-0001", "DE", -14) for i in range(1, 16)]
BATCH_B = (
    [body(f"INV-HX-10{i:02d}", "DE-0001", "DE", -14) for i in range(16, 21)]
    + [body(f"INV-HX-200{i}", "US-0042", "US", -19, "30000.00") for i in range(1, 6)]
    + [body(f"INV-HX-990{i}", "DE-0001", "DE", -14) for i in range(1, 4)]
    + [body(f"INV-HX-880{i}", "BR-0099", "BR", -14) for i in range(1, 3)]
)


def local_outcomes(bodies: list[dict]) -> dict[str, dict]:
    """Each invoice's end with the local insurer (the loaded data), run in this process on
    fakeredis: the state, reasons, banks offered and the event types."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    load_file(DEMO, client)
    flow = build_workflow(client, load_settings({"XINBAO_INSURER": "local"}))
    out = {}
    for wire in bodies:
        deal = flow.submit(DealRequestSchema().load(wire)).deal
        deal = flow.verify(deal.id)
        assert deal is not None
        out[wire["invoices"][0]["number"]] = {
            "state": str(deal.state),
            "reasons": json.loads(deal.fields.get("reasons") or "[]"),
            "offered": json.loads(deal.fields.get("offered_banks") or "[]"),
            "events": [e["type"] for e in flow.store.events(deal.id)],
        }
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    workdir: Path = tmp_path_factory.mktemp("outage")
    server = RedisServer(workdir / "redis", appendonly=True).start()
    sim = InsurerSim(workdir / "sim")
    env = {
        "REDIS_URL": server.url,
        "XINBAO_SWEEP_INTERVAL_SECONDS": "0.5",
        "XINBAO_STALE_AFTER_SECONDS": "2",
        "XINBAO_HOLD_RETRY_SECONDS": str(HOLD_SECONDS),
        # A failed verification holds the deal at once (tests/tasks covers the task's retries
        # before it); short insurer calls with one retry each, and a quick breaker.
        "XINBAO_INSURER_RETRY_LIMIT": "0",
        "XINBAO_INSURER": "http",
        "XINBAO_INSURER_URL": sim.url,
        "XINBAO_INSURER_API_KEY": SIM_API_KEY,
        "XINBAO_INSURER_TIMEOUT_SECONDS": "1",
        "XINBAO_INSURER_ATTEMPTS": "2",
        "XINBAO_INSURER_BREAKER_RESET_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    procs = Processes(env, workdir)
    with supervised(server, procs):
        try:
            subprocess.run(
                [str(BIN / "xinbao"), "load", str(DEMO)],
                env={**env, "PATH": str(BIN)},
                check=True,
                capture_output=True,
            )
            sim.start()
            base = procs.start_stack()
            yield {"base": base, "redis": server, "procs": procs, "sim": sim}
        finally:
            sim.stop()



def submit_all(base: str, bodies: list[dict]) -> list[str]:
    def one(wire: dict) -> str:
        answer = requests.post(f"{base}/api/v1/deals", json=wire, headers=EXPORTER, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, bodies))


def states(base: str, ids: list[str]) -> dict[str, dict]:
    return {
        i: requests.get(f"{base}/api/v1/deals/{i}", headers=EXPORTER, timeout=5).json() for i in ids
    }


def hold_reason(base: str, deal_id: str) -> tuple[str, ...]:
    """Why the deal's last hold began (the deal itself does not say: its events do)."""
    log = requests.get(f"{base}/api/v1/deals/{deal_id}/events", headers=EXPORTER, timeout=5).json()[
        "events"
    ]
    held = [e for e in log if e["type"] == "on_hold"]
    return tuple(held[-1]["why"]) if held else ()


def holds_of(base: str, deal_id: str) -> int:
    log = requests.get(f"{base}/api/v1/deals/{deal_id}/events", headers=EXPORTER, timeout=5).json()[
        "events"
    ]
    return sum(e["type"] == "on_hold" for e in log)


def await_all(stack: dict, ids: list[str], wanted: set[str], what: str, timeout: float) -> dict:
    def reached() -> dict | None:
        found = states(stack["base"], ids)
        return found if all(d["state"] in wanted for d in found.values()) else None

    try:
        return wait_until(reached, timeout, interval=0.3, what=what)
    except AssertionError:
        print(stack["procs"].logs())
        raise


def test_deals_wait_out_an_insurer_outage_and_end_as_with_the_local_insurer(stack):
    expected = local_outcomes(BATCH_A + BATCH_B)
    assert Counter(o["state"] for o in expected.values()) == {"pending_bank": 25, "rejected": 5}
    base, sim = stack["base"], stack["sim"]
    on_hold = {str(State.ON_HOLD)}

    # The insurer answers 503 to everything: the first batch is held, not failed.
    sim.faults(error_rate=1)
    first = submit_all(base, BATCH_A)
    await_all(stack, first, on_hold, "the first batch on hold", 30)
    assert {hold_reason(base, i) for i in first} == {("INSURER_UNAVAILABLE",)}

    # The insurer goes away altogether (SIGKILL): the second batch is held too, and the
    # first one is tried again when its hold ends and held again.
    sim.kill()
    second = submit_all(base, BATCH_B)
    await_all(stack, second, on_hold, "the second batch on hold", 30)
    wait_until(
        lambda: all(holds_of(base, i) >= 2 for i in first),
        30,
        interval=0.3,
        what="the first batch tried again and held again",
    )

    # Back on the same port, without faults: every deal resumes by itself.
    sim.start()
    ids = first + second
    settled = {str(s) for s in State} - {"submitted", "verifying", "on_hold", "routing"}
    await_all(stack, ids, settled, "every deal to settle", 30)

    numbers = dict(zip(ids, [b["invoices"][0]["number"] for b in BATCH_A + BATCH_B], strict=True))
    tally = Tally("insurer outage")
    holds: Counter[str] = Counter()

    def as_locally(record: DealRecord) -> str | None:
        want = expected[numbers[record.id]]
        types = [e.get("type") for e in record.events]
        holds[record.id] = types.count("on_hold")
        if types.count("verification_started") != types.count("on_hold") + 1:
            return f"events {types}: each hold must be followed by one verification"
        # The log without its holds: each hold and the verification restarted after it.
        unheld = [
            t
            for n, t in enumerate(types)
            if t != "on_hold" and not (t == "verification_started" and t in types[:n])
        ]
        got = {
            "state": record.fields.get("state"),
            "reasons": json.loads(record.fields.get("reasons") or "[]"),
            "offered": json.loads(record.fields.get("offered_banks") or "[]"),
            "events": unheld,
        }
        return None if got == want else f"ended {got}; with the local insurer {want}"

    client = redis.Redis.from_url(stack["redis"].url, decode_responses=True)
    audit(client, ids, tally, as_locally, once=ONCE_DESPITE_HOLDS)
    assert not tally.failed, tally.summary()
    assert len(ids) == len(set(ids)) == 30
    assert all(holds[i] >= 1 for i in ids), holds  # every deal really waited
