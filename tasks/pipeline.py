"""The deal pipeline's Celery tasks: each loads a deal by id and calls one workflow step."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from flask import current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workflow import keys
from workflow.gateway import InsurerUnavailable
from workflow.heartbeats import record_worker
from workflow.intake import DRAIN_FLAG_SECONDS
from workflow.limit_usage import drain_usage
from workflow.logs import bound
from workflow.pipeline import Workflow
from workflow.states import State

log = logging.getLogger("xinbao.tasks")

# Transport failures are retried with backoff; anything else is a bug and is logged loudly.
TRANSIENT = (RedisConnectionError, RedisTimeoutError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


def workflow() -> Workflow:
    return current_app.extensions["xinbao"]


@shared_task(name="xinbao.verify", bind=True, **RETRY)
def verify_deal(self, deal_id: str) -> str | None:
    """Verify cover and whitelist, reserve the limit and offer the deal to its first bank."""
    flow = workflow()
    try:
        deal = flow.verify(deal_id)
    except InsurerUnavailable as exc:
        if self.request.retries >= flow.settings.insurer_retry_limit:
            log.warning("insurer unavailable, deal on hold", extra={"deal_id": deal_id})
            deal = flow.hold(deal_id)
            return str(deal.state) if deal else None
        countdown = min(2**self.request.retries * 5, 300)
        flow.expect_retry(deal_id, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=None) from exc
    return str(deal.state) if deal else None


# One drain takes this many deals at a time, and hands the rest of the queue to another
# worker before it starts, so a burst is spread over every worker process.
DRAIN_BATCH = 16
DRAIN_SECONDS = 2.0


@shared_task(name="xinbao.drain_ready", **RETRY)
def drain_ready() -> int:
    """Verify and route newly submitted deals in batches: one message for a burst of
    submissions instead of one per deal. Each deal's step is the idempotent verify."""
    flow = workflow()
    flow.store.redis.delete(keys.drain_scheduled())
    done = 0
    stop_at = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < stop_at:
        batch = flow.take_ready_entries(DRAIN_BATCH)
        if not batch:
            return done
        if flow.store.redis.llen(keys.ready()):
            schedule_drain()
        # The batch in a few round trips; what it leaves (moved meanwhile, a refused chain,
        # a remote insurer) goes through the deal's own verify.
        try:
            left = flow.verify_many(batch)
        except Exception:
            log.exception("batch verify failed in drain: each deal on its own")
            left = batch
        for deal_id, request_id in left:
            # One drain serves many requests: each deal's lines carry the request that
            # submitted it (and a verify published from here takes that id along).
            with bound(deal_id=deal_id, request_id=request_id):
                try:
                    flow.verify(deal_id)
                except InsurerUnavailable:
                    dispatch_verify(deal_id)  # the per-deal task owns insurer retries, holds
                except Exception:
                    # This deal stays in its state index; the stranded-deal sweep retries it.
                    log.exception("verify failed in drain", extra={"deal_id": deal_id})
        done += len(batch)
    schedule_drain()  # time is up: another drain carries on
    return done


@shared_task(name="xinbao.route", **RETRY)
def route_deal(deal_id: str) -> str | None:
    """Offer a deal in ``routing`` to the next eligible bank (after a decline or a deadline)."""
    deal = workflow().route(deal_id)
    return str(deal.state) if deal else None


@shared_task(name="xinbao.sweep_deadlines", **RETRY)
def sweep_deadlines() -> int:
    """Beat: deals whose bank let the decision deadline pass go to the next bank."""
    flow = workflow()
    # The readiness check's proof that a worker takes tasks (beat sends this one every sweep).
    record_worker(flow.store.redis, sweep_deadlines.request.hostname or "worker", time.time())
    rerouted = flow.expire_deadlines()
    for deal_id in rerouted:
        log.info("bank deadline missed, re-routing", extra={"deal_id": deal_id})
        route_deal.delay(deal_id)
    return len(rerouted)


@shared_task(name="xinbao.lapse_approvals", **RETRY)
def lapse_approvals() -> int:
    """Beat: approvals never disbursed within their lapse period are cancelled, freeing
    their buyer-limit reservation and their invoices."""
    lapsed = workflow().lapse_approvals()
    for deal_id in lapsed:
        log.info("approval lapsed", extra={"deal_id": deal_id})
    return len(lapsed)


@shared_task(name="xinbao.settle_claim", **RETRY)
def settle_claim(deal_id: str) -> str | None:
    """Ask the insurer for its decision on a filed claim and record it."""
    deal = workflow().settle_claim(deal_id)
    return str(deal.state) if deal else None


@shared_task(name="xinbao.sweep_arrears", **RETRY)
def sweep_arrears() -> int:
    """Beat: advances unpaid after their due date (and grace) go overdue; the insurer's
    notice and claim deadlines that pass unmet are recorded on the deal."""
    moved = workflow().sweep_arrears()
    for deal_id in moved:
        log.info("arrears step", extra={"deal_id": deal_id})
    return len(moved)


@shared_task(name="xinbao.report_limit_usage", **RETRY)
def report_limit_usage() -> int:
    """Beat: tell the insurer how much of its buyer limits the advances use now (the outbox
    the transitions fill); while it cannot be reached the changes wait, in order."""
    flow = workflow()
    try:
        return drain_usage(flow.store.redis, flow.insurer)
    except InsurerUnavailable:
        log.warning("insurer unavailable: limit use reported later")
        return 0


@shared_task(name="xinbao.sweep_stranded", **RETRY)
def sweep_stranded() -> int:
    """Beat: re-dispatch every deal whose worker-owned step is overdue (a lost message, a
    killed worker, a deal on hold whose retry time has come)."""
    found = workflow().stranded()
    for deal_id, state in found:
        log.info("re-dispatching %s deal", state, extra={"deal_id": deal_id, "state": str(state)})
        if state == State.ROUTING:
            route_deal.delay(deal_id)
        elif state == State.CLAIM_FILED:
            settle_claim.delay(deal_id)
        else:
            verify_deal.delay(deal_id)
    return len(found)


def schedule_drain() -> None:
    """Publish a drain unless one is already queued. Called after a deal is committed; if
    the publish fails the stranded-deal sweep picks the deal up."""
    redis = workflow().store.redis
    try:
        # The flag expires, so a drain message that is lost only delays the next one.
        if not redis.set(keys.drain_scheduled(), "1", nx=True, ex=DRAIN_FLAG_SECONDS):
            return
    except Exception:  # noqa: BLE001 - any broker failure: the sweeper owns the retry
        log.exception("could not schedule a drain; the sweeper will")
        return
    publish_drain()


def publish_drain() -> None:
    """Publish a drain whose flag the caller has just set (a submission sets it in its own
    atomic step: ``Submitted.drain_due``); on failure clear the flag so the next submission
    tries again, and leave the deal to the sweeper."""
    try:
        try:
            drain_ready.delay()
        except Exception:
            workflow().store.redis.delete(keys.drain_scheduled())
            raise
    except Exception:  # noqa: BLE001 - any broker failure: the sweeper owns the retry
        log.exception("could not schedule a drain; the sweeper will")


def dispatch_verify(deal_id: str) -> None:
    """Publish verification after the deal is committed; a failed publish is not an error for
    the caller, since the stranded-deal sweep re-dispatches the deal."""
    _publish(verify_deal, deal_id)


def dispatch_route(deal_id: str) -> None:
    _publish(route_deal, deal_id)


def dispatch_settle_claim(deal_id: str) -> None:
    """Ask the insurer for its decision in a worker; if the broker is down, the stranded
    sweep asks later (a filed claim is worker-owned)."""
    _publish(settle_claim, deal_id)


def _publish(task, deal_id: str) -> None:
    try:
        task.delay(deal_id)
    except Exception:  # noqa: BLE001 - any broker failure: the sweeper owns the retry
        log.exception(
            "could not publish %s; the sweeper will", task.name, extra={"deal_id": deal_id}
        )
