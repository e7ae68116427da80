"""The HTTP insurer adapter against `xinbao insurer-sim` as a real process: answers equal to the
local adapter's, and every fault kind (latency, 5xx, dropped connections, expired tokens, the
circuit breaker, pending jobs, a limit cut)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pybreaker
import pytest

from tests.conftest import DEMO_TODAY, dongfang_application, make_application
from tests.support import InsurerSim
from workflow.claim_rules import ClaimFiling, LocalClaimRules
from workflow.deal import Buyer
from workflow.deferral_rules import DeferralRequest
from workflow.gateway import InsurerUnavailable, ReferenceDataInsurer
from workflow.insurer_http import HttpInsurer, HttpInsurerConfig, build_insurer
from workflow.reference import ReferenceRepository, store_reference
from workflow.settings import SIM_API_KEY, load_settings

TODAY = DEMO_TODAY.isoformat()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InsurerSim]:
    server = InsurerSim(tmp_path_factory.mktemp("sim"), "--seed", "7", today=TODAY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InsurerSim]:
    """Jobs and claims that stay pending for an hour."""
    server = InsurerSim(
        tmp_path_factory.mktemp("slow-sim"),
        "--job-delay", "3600", "--claim-review", "3600",
        today=TODAY,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def clean_sim(sim: InsurerSim) -> InsurerSim:
    sim.reset()
    return sim


def adapter(sim: InsurerSim, **overrides: float | int | str) -> HttpInsurer:
    config = HttpInsurerConfig(
        base_url=sim.url,
        api_key=SIM_API_KEY,
        timeout_s=2.0,
        attempts=3,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        job_wait_s=5.0,
        job_poll_s=0.02,
        breaker_failures=50,
        breaker_reset_s=30.0,
    )
    return HttpInsurer(replace(config, **overrides))


@pytest.fixture
def local(fake_redis, demo_reference) -> ReferenceDataInsurer:
    store_reference(fake_redis, demo_reference)
    return ReferenceDataInsurer(ReferenceRepository(fake_redis))


def _sorted(facts):
    return replace(facts, overdues=sorted(facts.overdues, key=lambda o: o.reported_on))


def _filing(**overrides) -> ClaimFiling:
    fields = {
        "deal_id": "D-1",
        "policy_no": "SIN-2026-0001",
        "buyer_code": "DE-0001",
        "currency": "USD",
        "loss_amount": Decimal("100000.00"),
        "documents": ("invoice", "bl"),
        "filed_on": DEMO_TODAY,
        "notice_filed_on": DEMO_TODAY - timedelta(days=10),
        "notice_deadline": DEMO_TODAY,
        "claim_deadline": DEMO_TODAY + timedelta(days=60),
        "coverage_ratio": Decimal("0.90"),
        "insured_cap": Decimal("90000.00"),
    }
    return ClaimFiling(**{**fields, **overrides})


def _deferral(**overrides) -> DeferralRequest:
    fields = {
        "deal_id": "D-2",
        "request_number": 1,
        "policy_no": "SIN-2026-0001",
        "buyer_code": "DE-0001",
        "currency": "USD",
        "outstanding": Decimal("80000.00"),
        "first_due_date": date(2027, 1, 9),
        "due_date": date(2027, 1, 9),
        "new_due_date": date(2027, 3, 9),
        "days_past_due": 0,
        "deferrals_before": 0,
        "asked_on": date(2027, 1, 5),
    }
    return DeferralRequest(**{**fields, **overrides})


# --- happy path --------------------------------------------------------------------------------

APPLICATIONS = {
    "declared invoice": make_application(),
    "undeclared invoice": make_application(number="INV-NOT-DECLARED"),
    "other exporter": dongfang_application(),
    "overdue buyer": make_application(buyer=Buyer("BR-0099", "Some Buyer", "BR")),
    "unknown policy": make_application(policy_no="SIN-NONE/1 #2"),
    "unknown buyer": make_application(buyer=Buyer("XX-0001", "Nobody", "FR")),
}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_cover_facts_equal_the_local_adapters(clean_sim, local, name) -> None:
    app = APPLICATIONS[name]
    assert _sorted(adapter(clean_sim).cover_facts(app)) == _sorted(local.cover_facts(app))


def test_the_demo_facts_are_not_empty(clean_sim) -> None:
    """The comparison above compares something: policy, limit, declaration and overdue."""
    http = adapter(clean_sim)
    facts = http.cover_facts(make_application())
    assert facts.policy is not None and facts.limits and facts.declarations["INV-HX-1001"]
    overdue = http.cover_facts(make_application(buyer=Buyer("BR-0099", "B", "BR")))
    assert overdue.overdues


def test_notice_equals_the_local_reference_and_repeats_as_one_job(clean_sim, local) -> None:
    http = adapter(clean_sim)
    ack = http.notify_possible_loss("D-9", "SIN-2026-0001", DEMO_TODAY)
    assert ack == local.notify_possible_loss("D-9", "SIN-2026-0001", DEMO_TODAY)
    assert http.notify_possible_loss("D-9", "SIN-2026-0001", DEMO_TODAY) == ack


@pytest.mark.parametrize(
    ("overrides", "paid", "reasons"),
    [
        ({}, True, ()),  # approved
        ({"notice_filed_on": DEMO_TODAY + timedelta(days=5)}, True, ("NOTICE_LATE",)),  # partial
        ({"filed_on": DEMO_TODAY + timedelta(days=90)}, False, ("CLAIM_LATE",)),  # refused
    ],
)
def test_claim_decisions_follow_the_insurer(clean_sim, overrides, paid, reasons) -> None:
    filing = _filing(deal_id=f"D-claim-{len(overrides)}-{paid}", **overrides)
    decision = adapter(clean_sim).decide_claim(filing)
    assert decision == LocalClaimRules().decide(filing)
    assert decision.paid is paid and decision.reasons == reasons


def test_a_claim_job_pending_too_long_is_unavailable(slow_sim) -> None:
    # The claim job itself is pending an hour on this simulator: the bounded wait gives up.
    with pytest.raises(InsurerUnavailable, match="pending"):
        adapter(slow_sim, job_wait_s=0.2).decide_claim(_filing())


def test_claim_pending_decision_is_none(tmp_path) -> None:
    sim = InsurerSim(tmp_path, "--claim-review", "3600", today=TODAY).start()
    try:
        assert adapter(sim).decide_claim(_filing()) is None
    finally:
        sim.stop()


@pytest.mark.parametrize(
    ("overrides", "granted", "reasons"),
    [
        ({}, True, ()),
        ({"new_due_date": date(2027, 12, 1)}, False, ("DEFERRAL_BEYOND_COVER",)),
        ({"days_past_due": 90}, False, ("DEFERRAL_TOO_LATE",)),
    ],
)
def test_deferral_consent_equals_the_local_adapters(
    clean_sim, local, overrides, granted, reasons
) -> None:
    # The deal id tells requests apart: the insurer answers a repeat with the first answer.
    request = _deferral(deal_id=f"D-deferral-{granted}-{reasons}", **overrides)
    consent = adapter(clean_sim).consent_to_deferral(request)
    assert consent == local.consent_to_deferral(request)
    assert consent.granted is granted and consent.reasons == reasons


def test_the_token_is_reused_while_it_lives(clean_sim) -> None:
    http = adapter(clean_sim)
    http.cover_facts(make_application())
    http.cover_facts(make_application())
    assert clean_sim.stats()["logins"] == 1


def test_settings_choose_the_adapter(sim) -> None:
    assert isinstance(build_insurer(load_settings({}), None), ReferenceDataInsurer)
    chosen = build_insurer(
        load_settings({"XINBAO_INSURER": "sim", "XINBAO_INSURER_URL": sim.url}), None
    )
    assert isinstance(chosen, HttpInsurer) and chosen.config.api_key == SIM_API_KEY


# --- faults ------------------------------------------------------------------------------------


def test_latency_over_the_timeout_is_unavailable_after_the_retries(clean_sim) -> None:
    clean_sim.faults(latency_ms=800)
    with pytest.raises(InsurerUnavailable, match="Timeout"):
        adapter(clean_sim, timeout_s=0.2, attempts=3).cover_facts(make_application())
    assert clean_sim.stats()["requests"] == 3  # the login, tried three times


def test_a_share_of_5xx_is_retried_then_answered(clean_sim, local) -> None:
    clean_sim.faults(error_rate=0.5, seed=7)
    facts = adapter(clean_sim, attempts=8).cover_facts(make_application())
    assert _sorted(facts) == _sorted(local.cover_facts(make_application()))
    assert clean_sim.stats()["errors"] >= 1


def test_only_5xx_are_retried_never_a_4xx(clean_sim) -> None:
    http = adapter(clean_sim)
    with pytest.raises(InsurerUnavailable, match="404"):
        http._get("/v1/jobs/NO-SUCH-JOB")
    assert clean_sim.stats()["requests"] == 2  # the login and one GET


def test_every_answer_5xx_is_unavailable(clean_sim) -> None:
    clean_sim.faults(error_rate=1.0)
    with pytest.raises(InsurerUnavailable, match="503"):
        adapter(clean_sim, attempts=4).notify_possible_loss("D-1", "SIN-2026-0001", DEMO_TODAY)
    assert clean_sim.stats()["errors"] == 4


def test_dropped_connections_are_retried(clean_sim, local) -> None:
    clean_sim.faults(drop_rate=0.4, seed=3)
    facts = adapter(clean_sim, attempts=8).cover_facts(make_application())
    assert _sorted(facts) == _sorted(local.cover_facts(make_application()))
    assert clean_sim.stats()["dropped"] >= 1


def test_every_connection_dropped_is_unavailable(clean_sim) -> None:
    clean_sim.faults(drop_rate=1.0)
    with pytest.raises(InsurerUnavailable):
        adapter(clean_sim, attempts=3).cover_facts(make_application())
    assert clean_sim.stats()["dropped"] == 3


def test_an_expired_token_means_one_new_login(clean_sim) -> None:
    http = adapter(clean_sim)
    http.cover_facts(make_application())
    clean_sim.faults(expire_tokens=True)
    assert http.cover_facts(make_application()).policy is not None
    stats = clean_sim.stats()
    assert stats["logins"] == 2 and stats["unauthorized"] == 1


def test_tokens_refused_at_once_give_up_after_one_new_login(clean_sim) -> None:
    clean_sim.faults(token_ttl_s=0)
    with pytest.raises(InsurerUnavailable, match="fresh token"):
        adapter(clean_sim).cover_facts(make_application())
    assert clean_sim.stats()["logins"] == 2


def test_a_wrong_api_key_is_unavailable_without_retries(clean_sim) -> None:
    with pytest.raises(InsurerUnavailable, match="API key"):
        adapter(clean_sim, api_key="wrong").cover_facts(make_application())
    assert clean_sim.stats()["requests"] == 1


def test_the_circuit_opens_then_half_opens(clean_sim) -> None:
    http = adapter(clean_sim, attempts=1, breaker_failures=2, breaker_reset_s=0.5)
    clean_sim.faults(error_rate=1.0)
    for _ in range(2):
        with pytest.raises(InsurerUnavailable):
            http.cover_facts(make_application())
    assert http.breaker.current_state == pybreaker.STATE_OPEN
    asked = clean_sim.stats()["requests"]
    with pytest.raises(InsurerUnavailable, match="circuit open"):
        http.cover_facts(make_application())
    assert clean_sim.stats()["requests"] == asked  # the open circuit did not call
    clean_sim.faults(error_rate=0.0)
    time.sleep(0.6)  # past the breaker's pause: one call goes through, and closes it
    assert http.cover_facts(make_application()).policy is not None
    assert http.breaker.current_state == pybreaker.STATE_CLOSED


def test_a_job_pending_too_long_is_unavailable_and_asks_again_as_one_job(slow_sim) -> None:
    http = adapter(slow_sim, job_wait_s=0.1)
    for _ in range(2):
        with pytest.raises(InsurerUnavailable, match="pending"):
            http.notify_possible_loss("D-slow", "SIN-2026-0001", DEMO_TODAY)


def test_a_limit_cut_takes_effect_after_its_notice(clean_sim) -> None:
    http = adapter(clean_sim)
    clean_sim.faults(limit_cut={"buyer": "DE-0001", "amount": "1000.00", "after_s": 3600})
    assert http.cover_facts(make_application()).limits[0].amount == Decimal("500000.00")
    clean_sim.faults(limit_cut={"buyer": "DE-0001", "amount": "1000.00", "after_s": 0})
    assert http.cover_facts(make_application()).limits[0].amount == Decimal("1000.00")


def test_bad_fault_settings_are_refused(clean_sim) -> None:
    import requests

    answer = requests.post(f"{clean_sim.url}/admin/faults", json={"error_rate": 2}, timeout=5)
    assert answer.status_code == 400
    answer = requests.post(f"{clean_sim.url}/admin/faults", json={"nope": 1}, timeout=5)
    assert answer.status_code == 400


def test_requests_without_a_token_are_401(clean_sim) -> None:
    import requests

    answer = requests.get(f"{clean_sim.url}/v1/policies/SIN-2026-0001", timeout=5)
    assert answer.status_code == 401
    answer = requests.get(
        f"{clean_sim.url}/v1/policies/SIN-2026-0001",
        headers={"Authorization": "Bearer forged"},
        timeout=5,
    )
    assert answer.status_code == 401


def test_sim_data_file_is_its_own(tmp_path: Path) -> None:
    """The simulator answers from the file it was given, not from Xinbao's data."""
    book = tmp_path / "book.json"
    book.write_text('{"policies": [], "limits": []}', encoding="utf-8")
    sim = InsurerSim(tmp_path, "--data", str(book)).start()
    try:
        assert adapter(sim).cover_facts(make_application()).policy is None
    finally:
        sim.stop()


def test_reported_limit_use_is_no_longer_room_at_the_insurer(clean_sim) -> None:
    from workflow.limit_usage import LimitUsage

    insurer = adapter(clean_sim)

    def room() -> Decimal:
        facts = insurer.cover_facts(make_application())
        assert facts.limits
        answer = clean_sim_get(clean_sim, "/v1/policies/SIN-2026-0001/buyers/DE-0001/cover")
        return Decimal(answer["covers"][0]["room"])

    full = room()
    use = LimitUsage("d1:5", "d1", "SIN-2026-0001", "DE-0001", "USD", Decimal("80000.00"))
    insurer.report_limit_usage(use)
    insurer.report_limit_usage(use)  # told twice: the same use
    assert room() == full - Decimal("80000.00")
    insurer.report_limit_usage(
        LimitUsage("d1:6", "d1", "SIN-2026-0001", "DE-0001", "USD", Decimal("0"))
    )
    assert room() == full


def clean_sim_get(sim: InsurerSim, path: str) -> dict:
    import requests

    token = requests.post(
        f"{sim.url}/v1/auth/login", json={"apiKey": SIM_API_KEY}, timeout=5
    ).json()["access_token"]
    return requests.get(
        f"{sim.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).json()
