"""The scaling bench's code, run small so it cannot rot: a copied deal is wherever its
representative is (every index, reservation and lock), the counters add up, the sweep moves the
due ones, and a run prints its line per size."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.stress import bench_pages as bp
from tests.stress import bench_scale as bsc
from tests.stress import bench_sweeps as bs
from web import build_workflow
from workflow import keys
from workflow.deal import Deal
from workflow.portfolio import figures
from workflow.settings import load_settings
from workflow.states import State

pytestmark = pytest.mark.redis


def mirrors(r, copy: str, rep: str, rename: tuple[str, str] | None = None) -> None:
    """``copy`` is in every sorted set and deal-keyed hash ``rep`` is in, with the same score
    or value, and holds a lock wherever ``rep`` holds one (its key renamed by ``rename``)."""
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == "zset":
            assert r.zscore(key, copy) == r.zscore(key, rep), key
        elif kind == "hash":
            assert r.hget(key, copy) == r.hget(key, rep), key
        elif kind == "string" and r.get(key) == rep:
            assert rename is not None, key
            assert r.get(key.replace(*rename)) == copy, key


def test_copied_advances_are_where_their_representatives_are_and_the_sweep_moves_the_due(
    real_redis,
):
    r, settings = real_redis, load_settings({})
    due, _made, _copied = bsc.make_book(r, settings, 60, reps=20, due_share=0.1, buyers=7)
    assert due == 6 and r.zcard(keys.due_dates()) == 60
    reps = [bp.clone_id(k + 1) for k in range(20)]
    for n in (20, 37, 59):
        copy, k = bp.clone_id(n + 1), n % 20
        mine, theirs = Deal(r.hgetall(keys.deal(copy))), Deal(r.hgetall(keys.deal(reps[k])))
        assert mine.get("invoices")[0]["number"] == bs.invoice_of(n)
        assert mine.get("loan") == {**theirs.get("loan"), "reference": bs.payout_reference(n)}
        assert {**mine.fields, "id": reps[k], "invoices": theirs.fields["invoices"],
                "loan": theirs.fields["loan"]} == theirs.fields
        assert r.lrange(keys.events(copy), 0, -1) == r.lrange(keys.events(reps[k]), 0, -1)
        mirrors(r, copy, reps[k], (bs.invoice_of(k), bs.invoice_of(n)))
    for key in r.scan_iter(match=keys.exposure_reservations("*")):
        total = key.removesuffix(":reservations") + ":reserved"
        assert sum(map(int, r.hvals(key))) == int(r.get(total)), key

    principals = [Decimal("80000.00") - n % 20 * 10 for n in range(60)]
    got = figures(r, bp.BANK)
    assert got["outstanding"] == {"USD": sum(principals)}
    assert sum(got["by_buyer"]["USD"].values()) == sum(principals)
    assert len(got["by_buyer"]["USD"]) == 7
    assert got["borrowers"] == 1 and got["first_time_borrowers"] == 1
    uscc = r.hget(keys.deal(reps[0]), "exporter_uscc")
    assert r.hget(keys.portfolio_borrowers(bp.BANK), uscc) == "60"

    sweep = bs.sweep_until_done(build_workflow(r, settings), "test", due)
    past_due = [n for n in range(60) if n % 20 < 2]
    assert sweep.moved == 6
    assert set(r.zrange(keys.by_state(State.OVERDUE), 0, -1)) == {
        bp.clone_id(n + 1) for n in past_due
    }
    assert figures(r, bp.BANK)["overdue"] == {"USD": sum(principals[n] for n in past_due)}


def test_copied_pending_deals_fill_the_queue_as_their_representatives(real_redis):
    r = real_redis
    bsc.make_queue(r, load_settings({}), 50, reps=10)
    assert r.zcard(keys.bank_queue(bp.BANK)) == 50
    for index in (keys.deadlines(), keys.by_state(State.PENDING_BANK), keys.by_bank(bp.BANK)):
        assert r.zcard(index) == 50, index
    copy, rep = bp.clone_id(23), bp.clone_id(3)
    assert {**r.hgetall(keys.deal(copy)), "id": rep} == r.hgetall(keys.deal(rep))
    mirrors(r, copy, rep)


def test_due_in_book():
    assert bsc.due_in_book(2000, 1000, 50) == 100
    assert bsc.due_in_book(2030, 1000, 50) == 130
    assert bsc.due_in_book(2500, 1000, 50) == 150


def test_a_small_run_prints_a_line_per_size(tmp_path):
    lines: list[str] = []
    got = bsc.run((200, 500), 0.05, 30, 2, "always", tmp_path, lines.append, reps=100)

    for size, due in ((200, 10), (500, 25)):
        line = next(x for x in lines if x.startswith(f"scale at {size} deals:"))
        assert f"sweep {due} due (5%)" in line and "queue p50/p95 desk" in line
        assert "portfolio p50/p95 desk" in line
        assert any(x.startswith(f"arrears sweep, {due} of {size} due") for x in lines)
        assert any(x.startswith(f"API queue, first page at {size} pending") for x in lines)
        for name in ("sweep_per_s", "sweep_s", "queue_p95_ms", "portfolio_p95_ms", "setup_s"):
            assert got[f"scale_{size}_{name}"] > 0, name
    assert lines[-1].startswith("scale: redis used_memory_peak")
    assert bsc.summary(got) == {
        "scale_deals": 500,
        "scale_sweep_per_s": got["scale_500_sweep_per_s"],
        "scale_queue_p95_ms": got["scale_500_queue_p95_ms"],
        "scale_portfolio_p95_ms": got["scale_500_portfolio_p95_ms"],
    }
    assert bsc.summary({}) == {}
