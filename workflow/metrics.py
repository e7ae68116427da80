"""Prometheus metrics of the deal pipeline: what each transition says (counted in the process
that commits it) and what Redis holds (read when scraped, exact across every process).

Event metrics use prometheus-client's process-local values, or its multiprocess files when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn, Celery prefork); the state metrics come from the
store's own indexes and counters through :class:`StateCollector`, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from workflow import keys
from workflow.deal import Deal
from workflow.reference.records import as_text
from workflow.states import TERMINAL, State
from workflow.webhooks import webhook_stats

log = logging.getLogger("xinbao.metrics")
# The *_created series would double the output for nothing Prometheus needs.
disable_created_metrics()

# Seconds from a few seconds (a worker step) to a quarter (an advance's life).
STATE_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400,
                 30 * 86400, 90 * 86400, 180 * 86400)  # fmt: skip

TRANSITIONS = Counter(
    "xinbao_transitions",
    "Deal state changes committed by this process, by from and to state ('none': created).",
    ["from_state", "to_state"],
)
TIME_IN_STATE = Histogram(
    "xinbao_state_duration_seconds",
    "Time a deal spent in a state, observed when it leaves it.",
    ["state"],
    buckets=STATE_BUCKETS,
)
VERIFICATIONS = Counter(
    "xinbao_verifications",
    "Verifications finished: verified (to routing), rejected, or on_hold (insurer away).",
    ["outcome"],
)
VERIFICATION_REASONS = Counter(
    "xinbao_verification_reasons",
    "Reason codes of finished verifications (a rejection's failures, a pass's notes).",
    ["outcome", "reason"],
)

# The transitions out of verifying are its outcomes.
OUTCOMES = {State.ROUTING: "verified", State.REJECTED: "rejected", State.ON_HOLD: "on_hold"}


def _moment(raw: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def observe_transition(before: Deal | None, after: Deal, event: dict[str, Any]) -> None:
    """The store's observer: count the move and how long the deal sat in the state it left."""
    old, new = event.get("from") or "none", event["to"]
    if old == new:
        return  # an event within a state (a first approval, a deferral): no transition
    TRANSITIONS.labels(old, new).inc()
    if before is not None:
        # Deals written before state_at existed fall back to their last event's time.
        entered = _moment(before.fields.get("state_at") or before.fields.get("updated_at"))
        left = _moment(event.get("at"))
        if entered and left:
            TIME_IN_STATE.labels(old).observe(max((left - entered).total_seconds(), 0.0))
    if old == State.VERIFYING and new in OUTCOMES:
        outcome = OUTCOMES[State(new)]
        VERIFICATIONS.labels(outcome).inc()
        for reason in event.get("why") or ():
            VERIFICATION_REASONS.labels(outcome, reason).inc()


class StateCollector(Collector):
    """Deals by state, queues and webhook deliveries, read from Redis at each scrape (a few
    ZCARDs and LLENs in one round trip; never a scan of the deals)."""

    def __init__(self, redis: Any):
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("xinbao_store_up", "1 if the state below was read from Redis.")
        try:
            families = list(self._state())
        except Exception as exc:  # noqa: BLE001 - Redis down: the event metrics still answer
            log.warning("metrics: state not read from Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _state(self) -> Iterator[Metric]:
        live = [s for s in State if s not in TERMINAL]
        banks = sorted(as_text(b) for b in self.redis.smembers(keys.banks()))
        pipe = self.redis.pipeline(transaction=False)
        for state in live:
            pipe.zcard(keys.by_state(state))
        pipe.hgetall(keys.deals_ended())
        pipe.llen(keys.ready())
        for bank_id in banks:
            pipe.zcard(keys.bank_queue(bank_id))
            pipe.zcard(keys.awaiting_check(bank_id))
        answers = pipe.execute()
        deals = GaugeMetricFamily(
            "xinbao_deals",
            "Deals by state now (live states from their index; terminal states counted "
            "as deals reach them since this metric exists).",
            labels=["state"],
        )
        for state, count in zip(live, answers, strict=False):
            deals.add_metric([str(state)], int(count))
        ended = {as_text(k): int(v) for k, v in answers[len(live)].items()}
        for state in sorted(TERMINAL):
            deals.add_metric([str(state)], ended.get(str(state), 0))
        yield deals
        ready = GaugeMetricFamily(
            "xinbao_ready_queue_depth", "Submitted deals waiting for a worker's batch drain."
        )
        ready.add_metric([], int(answers[len(live) + 1]))
        yield ready
        pending = GaugeMetricFamily(
            "xinbao_bank_queue_depth", "Deals pending each bank's decision.", labels=["bank_id"]
        )
        checks = GaugeMetricFamily(
            "xinbao_bank_awaiting_check",
            "Deals pending at each bank with a first approval awaiting a checker.",
            labels=["bank_id"],
        )
        rest = answers[len(live) + 2 :]
        for i, bank_id in enumerate(banks):
            pending.add_metric([bank_id], int(rest[2 * i]))
            checks.add_metric([bank_id], int(rest[2 * i + 1]))
        yield pending
        yield checks
        yield from self._webhooks()

    def _webhooks(self) -> Iterable[Metric]:
        """Delivery counts per webhook, as workflow.webhooks keeps them in Redis."""
        try:
            stats = webhook_stats(self.redis)
        except Exception:  # noqa: BLE001 - a scrape still answers with everything else
            log.exception("webhook stats not read")
            return ()
        deliveries = CounterMetricFamily(
            "xinbao_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, failed (an attempt that failed "
            "and will be retried), dead (an event given up after the retry time) and gap "
            "(events trimmed from the feed before they could be queued).",
            labels=["webhook_id", "bank_id", "outcome"],
        )
        pending = GaugeMetricFamily(
            "xinbao_webhook_pending",
            "Events queued for a webhook and not yet delivered or given up.",
            labels=["webhook_id", "bank_id"],
        )
        failing = GaugeMetricFamily(
            "xinbao_webhook_consecutive_failures",
            "Failed attempts in a row for a webhook (0 once one is delivered).",
            labels=["webhook_id", "bank_id"],
        )
        outcomes = (("delivered", "delivered"), ("failed_attempts", "failed"), ("dead", "dead"),
                    ("gaps", "gap"))
        for row in stats:
            ids = [str(row["webhook_id"]), str(row["bank_id"])]
            for field, outcome in outcomes:
                deliveries.add_metric([*ids, outcome], int(row.get(field) or 0))
            pending.add_metric(ids, int(row.get("pending") or 0))
            failing.add_metric(ids, int(row.get("consecutive_failures") or 0))
        return (deliveries, pending, failing)


def multiprocess_dir() -> str | None:
    """Where prometheus-client's multiprocess files go (None: one process, values in memory)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Process(Collector):
    """This process's own metrics (single-process mode) as part of another registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def event_registry() -> CollectorRegistry:
    """A registry of the event metrics: every process's (multiprocess mode) or this one's."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Process())
    return registry


def scrape_registry(redis: Any) -> CollectorRegistry:
    """What /metrics shows: the event metrics plus the state read from Redis."""
    registry = event_registry()
    registry.register(StateCollector(redis))
    return registry


__all__ = [
    "StateCollector",
    "TIME_IN_STATE",
    "TRANSITIONS",
    "VERIFICATIONS",
    "VERIFICATION_REASONS",
    "event_registry",
    "multiprocess_dir",
    "observe_transition",
    "scrape_registry",
]
