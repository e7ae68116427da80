"""The short version of every ``make chaos`` scenario (tests/stress/chaos.py), on one stack: a
private Redis with AOF (appendfsync always), gunicorn, a real Celery worker and beat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stress import chaos, chaos_insurer, chaos_sweeps

pytestmark = pytest.mark.integration

SIZES = chaos.SHORT


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[chaos.Stack]:
    running = chaos.Stack(tmp_path_factory.mktemp("chaos"), SIZES)
    try:
        yield running.start()
    finally:
        running.stop()


def check(stack: chaos.Stack, tally: chaos.Tally) -> None:
    """Every process must still run (restarted for the next test if not), and nothing counted
    or noticed may be wrong; on failure the message has the counts, problems and logs."""
    stack.heal(tally)
    if tally.failed:
        pytest.fail(f"{tally.summary()}\n\n{stack.logs()[-6000:]}", pytrace=False)


def test_worker_sigkill_loses_strands_and_duplicates_nothing(stack):
    tally = chaos.worker_kills(stack, SIZES)
    check(stack, tally)
    assert tally.accepted == SIZES.deals


def test_redis_restart_loses_no_accepted_deal_and_everything_reconnects(stack):
    tally = chaos.redis_restarts(stack, SIZES)
    check(stack, tally)
    assert tally.accepted == SIZES.restart_deals - 1  # all but the orphan, which is committed


def test_tight_limit_is_never_overcommitted_under_concurrent_approvals(stack):
    tally = chaos.tight_limit(stack, SIZES)
    check(stack, tally)
    assert tally.accepted == SIZES.tight


def test_same_invoice_submitted_concurrently_makes_one_live_deal(stack):
    tally = chaos.same_invoice(stack, SIZES)
    check(stack, tally)
    assert tally.accepted == 1


def test_fuzzed_api_never_answers_5xx_and_every_error_has_the_documented_shape(stack):
    tally = chaos.fuzz(stack, SIZES, seed=20261124)  # fixed: the same requests every run
    check(stack, tally)


def test_due_date_sweeps_under_worker_kills_move_each_deal_once(stack):
    tally = chaos.sweeps_under_kills(stack, SIZES)
    check(stack, tally)
    assert tally.accepted == len(chaos_sweeps.plan(SIZES))


def test_ledger_balances_after_all_of_it(stack):
    check(stack, chaos.ledger(stack, SIZES))


def test_insurer_faults_lose_strand_and_duplicate_nothing(tmp_path_factory):
    # On a stack of its own: its web and worker talk to the insurer simulator over HTTP.
    with chaos_insurer.insurer_stack(tmp_path_factory.mktemp("insurer"), SIZES) as (stack, sim):
        tally = chaos_insurer.insurer_faults(stack, SIZES, sim=sim)
        check(stack, tally)
    assert tally.accepted == SIZES.insurer_deals
