"""Reference data cached in the worker: a reload (load or whitelist import) is seen by the
next verification, nothing is cached without a version, and the cache saves the reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from tests.conftest import DONGFANG, demo_text, dongfang_application, make_application
from workflow import keys
from workflow.pipeline import Decision
from workflow.reference import parse_reference, store_reference
from workflow.reference.cache import mark_reference_changed
from workflow.reference.whitelist_import import ProgrammeSpec, import_whitelist
from workflow.states import State


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def reload(wf, **sections) -> None:
    """Load these sections of the demo file, each changed by its function."""
    document = json.loads(demo_text())
    store_reference(
        wf.store.redis,
        parse_reference({name: change(document[name]) for name, change in sections.items()}),
    )


def placed(wf, number: str, **overrides):
    return wf.verify(wf.submit(make_application(number=number, **overrides)).deal.id)


def without_boc(banks: list[dict]) -> list[dict]:
    return [b for b in banks if b["bank_id"] != "BOC-NB"]


def premium_unpaid(policies: list[dict]) -> list[dict]:
    return [{**p, "premium_paid": p["policy_no"] != "SIN-2026-0001"} for p in policies]


def test_a_reload_is_seen_by_the_next_verification(wf):
    assert placed(wf, "INV-HX-1001").bank_id == "BOC-NB"  # the cache now holds the banks
    reload(wf, banks=without_boc)
    assert placed(wf, "INV-HX-1002").bank_id == "ICBC-NB"
    reload(wf, policies=premium_unpaid)
    rejected = placed(wf, "INV-HX-1003")
    assert rejected.state == State.REJECTED
    assert rejected.get("reasons") == ["PREMIUM_UNPAID"]


def test_a_reload_is_seen_by_the_next_routing(wf):
    first = placed(wf, "INV-HX-1001")
    assert first.bank_id == "BOC-NB"  # the cache now holds the three banks
    reload(wf, banks=lambda banks: [b for b in banks if b["bank_id"] != "ICBC-NB"])
    # BOC declines: the re-routing reads the reloaded banks, where ICBC is no more.
    wf.decide(first.id, "BOC-NB", Decision(False, "officer-x", reason="no"))
    assert wf.route(first.id).bank_id == "CCB-NB"


def test_a_whitelist_import_is_seen_by_the_next_verification(wf):
    first = wf.verify(wf.submit(dongfang_application(number="INV-DF-3001")).deal.id)
    assert first.get("whitelist")["whitelisted"] is False
    spec = ProgrammeSpec("NB-2027-NEW", "Ningbo", date(2026, 1, 1), date(2027, 12, 31))
    import_whitelist(wf.store.redis, spec, [DONGFANG], now=datetime(2026, 11, 24, tzinfo=UTC))
    second = wf.verify(wf.submit(dongfang_application(number="INV-DF-3002")).deal.id)
    assert second.get("whitelist") == {
        "whitelisted": True,
        "reason": None,
        "programmes": ["NB-2027-NEW"],
    }


def test_reference_is_read_once_per_version(wf):
    """Between two loads, the banks are read from the cache: a hand-made change without a new
    version is not seen (which is why only the loaders write reference data), and a new
    version makes it seen."""
    r = wf.store.redis
    assert placed(wf, "INV-HX-1001").bank_id == "BOC-NB"
    r.delete(keys.bank("BOC-NB"))
    assert placed(wf, "INV-HX-1002").bank_id == "BOC-NB"
    mark_reference_changed(r)
    assert placed(wf, "INV-HX-1003").bank_id == "ICBC-NB"


def test_without_a_version_nothing_is_cached(wf):
    r = wf.store.redis
    r.delete(keys.reference_version())
    assert placed(wf, "INV-HX-1001").bank_id == "BOC-NB"
    r.delete(keys.bank("BOC-NB"))
    assert placed(wf, "INV-HX-1002").bank_id == "ICBC-NB"
