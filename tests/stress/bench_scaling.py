"""`make bench`, part: how the cost grows (issue 11): deals/s POST -> pending_bank with 1, 2
and 4 worker processes (web at the bench's count) and with 1, 2 and 4 web processes (workers
at the bench's count), and CPU per deal (each process tree, and the client) for deals of 1, 10
and 50 invoices; on one stack as ``bench.pipeline_stack`` starts it, restarting only the
process whose count changes. On a 2-core machine shared with the client, more processes than
cores show what contention costs, not what more cores would give.

    python -m tests.stress.bench_scaling [--deals 500] [--counts 1,2,4] [--invoices 1,10,50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.stress import bench, bench_naive, dataset

DEALS = 500  # per process count
COUNTS = (1, 2, 4)
INVOICES = (1, 10, 50)
# Deals per invoice count (multiples of dataset.BUYERS): fewer of the bigger deals.
INVOICE_DEALS = {1: 200, 10: 100, 50: 40}
CONCURRENCY = 16
WARM_INDEX = 6 * 10**6


def _round_up(n: int) -> int:
    return -(-n // dataset.BUYERS) * dataset.BUYERS


def post_multi(client: bench.Client, start: int, invoices: int, deal: int) -> bench.Sent:
    """Deal ``deal`` of a series of ``invoices``-invoice deals, as ``Client.post_deal`` sends."""
    indexes = dataset.invoice_indexes(start, deal, invoices)
    sent = bench.Sent(indexes[0], time.time())
    answer = client.http.post(
        "/api/v1/deals",
        dataset.multi_invoice_body(indexes),
        headers={
            **dataset.auth(dataset.EXPORTER_TOKEN),
            "Idempotency-Key": f"m{invoices}-{start}-{deal}",
        },
    )
    sent.status = answer.status
    if answer.status == 202:
        sent.deal_id = answer.json()["id"]
    return sent


def run(
    deals: int,
    counts: tuple[int, ...],
    invoices: tuple[int, ...],
    invoice_deals: dict[int, int],
    appendfsync: str,
    work: Path,
    emit: Callable[[str], None] = print,
) -> dict[str, float]:
    """Measure and emit each figure; return them by name."""
    series = {m: _round_up(invoice_deals.get(m, dataset.BUYERS)) for m in invoices}
    needed = 2 * len(counts) * deals + sum(m * n for m, n in series.items())
    out: dict[str, float] = {}
    warm = (range(i, i + bench_naive.WARM_DEALS) for i in range(WARM_INDEX, 7 * 10**6, 100))
    with bench.pipeline_stack(work / "scaling", appendfsync, _round_up(needed)) as stack:
        procs, start = stack.procs, 0
        for kind in ("worker", "web"):
            for n in counts:
                procs.stop(kind)
                if kind == "worker":
                    procs.worker(concurrency=n)
                else:
                    bench.gunicorn(procs, "web", "web:create_app()", stack.web_port, n)
                bench.await_worker(stack, next(warm))
                sent = bench.closed_loop(stack.client, range(start, start + deals), CONCURRENCY)
                start += deals
                out[f"{kind}_{n}_per_s"] = bench.pending_rate(stack.r, sent)
            procs.stop(kind)  # back to the bench's counts
            if kind == "worker":
                procs.worker(concurrency=bench.WORKER_CONCURRENCY)
            else:
                bench.gunicorn(procs, "web", "web:create_app()", stack.web_port)
            others = "web" if kind == "worker" else "worker"
            emit(
                f"scaling: deals/s by {kind} processes ({others} processes at "
                f"{bench.WEB_WORKERS if others == 'web' else bench.WORKER_CONCURRENCY}, "
                f"{deals} deals each): "
                + " ".join(f"{n}={out[f'{kind}_{n}_per_s']:.0f}" for n in counts)
            )
        bench.await_worker(stack, next(warm))
        start = _round_up(start)
        for m, n in series.items():
            roots = stack.roots()
            before = bench.cpu_seconds(roots)
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                sent = list(
                    pool.map(lambda k, m=m, s=start: post_multi(stack.client, s, m, k), range(n))
                )
            assert all(s.status == 202 for s in sent), {s.status for s in sent}
            rate = bench.pending_rate(stack.r, sent)
            after = bench.cpu_seconds(roots)
            start += m * n
            out[f"cpu_ms_per_deal_{m}_invoices"] = (
                sum(after[k] - before[k] for k in after) * 1000 / n
            )
            emit(
                f"scaling: {n} deals of {m} invoice(s): {rate:.0f} deals/s, cpu ms per deal "
                f"{out[f'cpu_ms_per_deal_{m}_invoices']:.1f} "
                f"({bench.cpu_report(before, after, n)})"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=DEALS, help="deals per process count")
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--invoices", default=",".join(map(str, INVOICES)))
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    args = parser.parse_args()
    return bench.run_alone(
        "scaling",
        lambda work, emit: run(
            args.deals,
            bench_naive.parse_sizes(args.counts),
            bench_naive.parse_sizes(args.invoices),
            INVOICE_DEALS,
            args.appendfsync,
            work,
            emit,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
