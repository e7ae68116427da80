"""The servicing bench code, run small so it cannot rot: the clones are real disbursed
advances (their logs rebuild them, the counters add up), the sweep moves exactly the due ones,
and the portfolio page and API answer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.stress import bench_pages as bp
from tests.stress import bench_sweeps as bs
from workflow import keys
from workflow.deal import utcnow
from workflow.portfolio import figures
from workflow.settings import load_settings
from workflow.states import State
from workflow.steps import business_date

pytestmark = pytest.mark.redis


def test_seeded_advances_are_disbursed_deals_and_the_sweep_moves_the_due_ones(real_redis):
    settings = load_settings({})
    today = business_date(utcnow())
    due = bs.due_dates(40, 6, today)
    bs.prepare(real_redis, settings, 40, due, buyers=7)

    assert real_redis.zcard(keys.due_dates()) == 40
    assert real_redis.zcard(keys.bank_state(bp.BANK, State.DISBURSED)) == 40
    assert real_redis.zcard(keys.bank_state(bp.BANK, State.APPROVED)) == 1  # the template
    assert real_redis.zcard(keys.approval_lapses()) == 1
    clone = real_redis.hgetall(keys.deal(bp.clone_id(3)))
    # clone_id(n + 1) is clone n: this is clone 2
    assert clone["state"] == State.DISBURSED and '"code":"BUY-00002"' in clone["buyer"]
    assert clone["due_date"] == due[2].isoformat()
    got = figures(real_redis, bp.BANK)
    principals = [Decimal("80000.00") - n % 1000 * 10 for n in range(40)]
    assert got["outstanding"] == {"USD": sum(principals)}
    assert len(got["by_buyer"]["USD"]) == 7 and got["borrowers"] == 1

    sweep = bs.sweep_until_done(bs.build_workflow(real_redis, settings), "test", 6)
    assert sweep.moved == 6 and "6 of 6 due" in sweep.line()
    overdue = set(real_redis.zrange(keys.by_state(State.OVERDUE), 0, -1))
    assert overdue == {bp.clone_id(n + 1) for n in range(6)}
    assert figures(real_redis, bp.BANK)["overdue"] == {"USD": sum(principals[:6])}
    assert real_redis.zcount(keys.due_dates(), "-inf", utcnow().timestamp()) == 0

    lines: list[str] = []
    bs.portfolio_pages(real_redis, settings, 40, 1, lines.append)
    assert "7 buyers" in lines[0] and lines[1].startswith("officer portfolio page at 40")
    assert lines[2].startswith("API portfolio at 40")
