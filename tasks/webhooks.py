"""Bank webhook tasks: beat's dispatcher, and each webhook's delivery on the ``webhooks`` queue."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from tasks.pipeline import RETRY
from workflow.webhook_delivery import Deliveries, DeliveryConfig

log = logging.getLogger("xinbao.tasks")

# Deliveries wait on banks' endpoints: they run on their own queue (and their own worker in
# production, see docker-compose.yml), never in the deal pipeline's.
QUEUE = "webhooks"


def deliveries() -> Deliveries:
    flow = current_app.extensions["xinbao"]
    return Deliveries(flow.store.redis, DeliveryConfig.from_settings(flow.settings))


@shared_task(name="xinbao.dispatch_webhooks", **RETRY)
def dispatch_webhooks() -> int:
    """Beat: queue the banks' new feed events for their webhooks and start a delivery task
    for each webhook with an event due (one at a time per webhook)."""
    jobs = deliveries()

    def publish(webhook_id: str, token: str) -> None:
        # A message that waited longer than the lease is stale: the next pass sends another.
        expires = jobs.config.lease_ms / 1000
        deliver_webhook.apply_async((webhook_id, token), queue=QUEUE, expires=expires)

    return jobs.dispatch(publish)


# No autoretry: a failed POST is rescheduled in Redis (backoff, then dead after the retry
# time) and picked up by the dispatcher, never by a long Celery countdown.
@shared_task(name="xinbao.deliver_webhook")
def deliver_webhook(webhook_id: str, token: str) -> int:
    """Post the webhook's due events, signed, in feed order, while this task holds its lease."""
    return deliveries().deliver(webhook_id, token)
