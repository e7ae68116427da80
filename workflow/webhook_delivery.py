"""Delivery of bank webhooks: queue each feed entry per webhook, then post it signed, with retries.

At least once: a dispatcher moves a webhook's feed cursor in the same Lua step that queues the
entries it read (``lua/webhook_enqueue.lua``); a delivery leaves the queue only in the step that
records its success or its death (``lua/webhook_outcome.lua``). A process killed in between
posts that event again later; the receiver de-duplicates by its event id.

One webhook, one poster: a lease (a token in Redis that expires) admits one delivery task per
webhook at a time, which posts its due events one by one in feed order. A slow or dead endpoint
therefore holds at most one worker thread, and other webhooks' tasks run beside it. A failed
attempt pauses its webhook (exponential backoff with jitter on consecutive failures) and puts
the event back to be retried on its own backoff, before the later events for its first
``ORDER_KEPT_TRIES`` tries (order survives a short outage), after them behind the others (an
event the receiver refuses for good does not stall the bank). An event still undelivered
``retry_hours`` after it was queued is given up ("dead") and counted.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import anyio
import httpx

from workflow import keys
from workflow.feed import FeedCursorExpired, FeedEntry, read_bank_feed
from workflow.settings import Settings
from workflow.webhook_signature import signature_headers
from workflow.webhooks import HISTORY_KEPT, Webhook, get_webhook, list_webhooks

log = logging.getLogger("xinbao.webhooks")

# Feed entries one dispatch pass queues per webhook at most (the next pass takes the rest).
PAGE = 100
PAGES_PER_PASS = 10
# Due events a delivery task looks among for the earliest in feed order.
CLAIM_WINDOW = 100
# A delivery task hands over after this long; the next dispatch pass starts another.
TASK_BUDGET_SECONDS = 20.0
# An event that failed fewer times than this is retried before any later event of its webhook;
# past that it no longer holds them back (an event the receiver refuses for good must not stall
# the bank's deliveries until it is given up), and order is no longer guaranteed.
ORDER_KEPT_TRIES = 5
# How much of an endpoint's answer is kept in the history.
ERROR_TEXT = 200


@dataclass(frozen=True)
class DeliveryConfig:
    """The delivery settings (``Settings.webhook_*``)."""

    retry_seconds: float = 24 * 3600.0
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    connect_timeout_seconds: float = 3.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            retry_seconds=settings.webhook_retry_hours * 3600,
            backoff_seconds=settings.webhook_backoff_seconds,
            backoff_max_seconds=settings.webhook_backoff_max_seconds,
            connect_timeout_seconds=settings.webhook_connect_timeout_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
        )

    @property
    def lease_ms(self) -> int:
        """Longer than one attempt can take, so a live task never loses its lease mid-post;
        short enough that a killed task's webhook is picked up again within a minute."""
        return int((2 * (self.connect_timeout_seconds + self.timeout_seconds) + 30) * 1000)


@dataclass(frozen=True)
class PostResult:
    """One POST's outcome: the status code, or the error that stopped it."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Post = Callable[[str, dict[str, str], bytes, DeliveryConfig], PostResult]


def http_post(url: str, headers: dict[str, str], body: bytes, config: DeliveryConfig) -> PostResult:
    """POST with httpx; redirects are not followed (a signed event goes only where registered).

    httpx's timeouts bound each socket operation, not the attempt: an endpoint sending its
    answer a byte at a time would hold the post (and outlive the webhook's lease, letting a
    second task post beside it). So the whole attempt also ends after connect + read timeout.

    The attempt runs its own event loop on a thread of its own: the calling thread may already
    run one (a gevent or asyncio host, a test driving a browser), and anyio.run refuses that."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-post") as pool:
        return pool.submit(anyio.run, _post, url, headers, body, config).result()


async def _post(
    url: str, headers: dict[str, str], body: bytes, config: DeliveryConfig
) -> PostResult:
    timeout = httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            with anyio.fail_after(config.connect_timeout_seconds + config.timeout_seconds):
                async with client.stream("POST", url, content=body, headers=headers) as answer:
                    # Only the status matters: a large or endless answer is never read.
                    if 200 <= answer.status_code < 300:
                        return PostResult(answer.status_code)
                    return PostResult(answer.status_code, f"HTTP {answer.status_code}")
    except TimeoutError:
        return PostResult(None, "timeout (the whole attempt took too long)")
    except httpx.TimeoutException as exc:
        return PostResult(None, f"timeout ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return PostResult(None, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT])


def backoff(
    failures: int, config: DeliveryConfig, rand: Callable[[], float] = random.random
) -> float:
    """The wait after the ``failures``-th failure in a row: doubled each time up to the
    longest wait, then 50-100 % of it (jitter, so endpoints coming back are not hit in step)."""
    exponent = min(max(failures - 1, 0), 40)
    full = min(config.backoff_seconds * 2**exponent, config.backoff_max_seconds)
    return full * (0.5 + rand() / 2)


def delivery_body(entry: FeedEntry, bank_id: str) -> str:
    """The JSON posted for one feed entry: its ids, then the event as the bank's feed shows it."""
    envelope = {
        "event_id": entry.event_id,
        "cursor": entry.cursor,
        "deal_id": entry.deal_id,
        "bank_id": bank_id,
    }
    event = {k: v for k, v in entry.event.items() if k not in envelope}
    return json.dumps({**envelope, **event}, ensure_ascii=False, separators=(",", ":"))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Deliveries:
    """The webhooks' delivery queues in Redis (the Lua steps) and the two jobs that use them."""

    def __init__(
        self,
        client: Any,
        config: DeliveryConfig,
        post: Post = http_post,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = client
        self.config = config
        self.post = post
        self.clock = clock
        lua = resources.files("workflow").joinpath("lua")
        self._enqueue = client.register_script(lua.joinpath("webhook_enqueue.lua").read_text())
        self._outcome = client.register_script(lua.joinpath("webhook_outcome.lua").read_text())
        self._lease = client.register_script(lua.joinpath("webhook_lease.lua").read_text())

    # --- dispatch (beat, every few seconds) ----------------------------------------------

    def dispatch(self, publish: Callable[[str, str], None]) -> int:
        """Queue every webhook's new feed entries, and start a delivery task (``publish(
        webhook id, lease token)``) for each webhook with an event due and no task running.
        Returns how many events were queued and tasks started."""
        done = 0
        for hook in list_webhooks(self.redis):
            try:
                done += self.pull_feed(hook)
                if self._ready(hook.webhook_id) and self._start(hook.webhook_id, publish):
                    done += 1
            except Exception:  # noqa: BLE001 - one broken webhook never stops the others
                log.exception("webhook dispatch failed", extra={"webhook_id": hook.webhook_id})
        return done

    def pull_feed(self, hook: Webhook) -> int:
        """Queue the bank's feed entries after the webhook's cursor; returns how many."""
        cursor, queued = hook.cursor, 0
        for _ in range(PAGES_PER_PASS):
            try:
                entries = read_bank_feed(self.redis, hook.bank_id, cursor or None, limit=PAGE)
            except FeedCursorExpired:
                # The feed was trimmed past the cursor (dispatch stopped longer than the
                # retention): what was trimmed cannot be delivered. Say so, go on from the
                # oldest entry kept.
                self._record_gap(hook.webhook_id, cursor)
                entries = read_bank_feed(self.redis, hook.bank_id, None, limit=PAGE)
            if not entries:
                break
            now = self.clock()
            args: list[Any] = [cursor, entries[-1].cursor, repr(now)]
            for entry in entries:
                body = delivery_body(entry, hook.bank_id)
                delivery = {"body": body, "cursor": entry.cursor, "queued_at": now}
                args += [entry.event_id, json.dumps(delivery, ensure_ascii=False)]
            added = self._enqueue(keys=self._keys(hook.webhook_id)[:4], args=args)
            if int(added) < 0:
                break  # removed, or another dispatcher got there first
            queued += int(added)
            cursor = entries[-1].cursor
            if len(entries) < PAGE:
                break
        return queued

    def _record_gap(self, webhook_id: str, cursor: str) -> None:
        log.warning("webhook feed cursor expired", extra={"webhook_id": webhook_id})
        entry = {
            "at": _iso(self.clock()),
            "outcome": "gap",
            "cursor": cursor,
            "error": "events trimmed from the feed before they could be queued",
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(keys.webhook_stats(webhook_id), "gaps", 1)
        pipe.lpush(keys.webhook_history(webhook_id), json.dumps(entry))
        pipe.ltrim(keys.webhook_history(webhook_id), 0, HISTORY_KEPT - 1)
        pipe.execute()

    def _ready(self, webhook_id: str) -> bool:
        now = self.clock()
        paused = float(self.redis.hget(keys.webhook(webhook_id), "paused_until") or 0)
        if paused > now:
            return False
        return bool(self.redis.zrangebyscore(keys.webhook_due(webhook_id), "-inf", now, 0, 1))

    def _start(self, webhook_id: str, publish: Callable[[str, str], None]) -> bool:
        token = secrets.token_hex(8)
        lease = keys.webhook_lease(webhook_id)
        if not self.redis.set(lease, token, nx=True, px=self.config.lease_ms):
            return False  # a task holds it (or is queued); it posts what is due
        try:
            publish(webhook_id, token)
        except Exception:
            self._lease(keys=[lease], args=["release", token])  # the next pass tries again
            raise
        return True

    # --- delivery (a task on the webhooks queue) ------------------------------------------

    def deliver(self, webhook_id: str, token: str) -> int:
        """Post the webhook's due events in feed order while this task holds its lease, until
        none is due, one fails, or the task's time is up. Returns how many were delivered."""
        delivered = 0
        started = self.clock()
        lease = keys.webhook_lease(webhook_id)
        try:
            while self.clock() - started < TASK_BUDGET_SECONDS:
                if not self._lease(keys=[lease], args=["renew", token, self.config.lease_ms]):
                    return delivered  # a stale task (its lease expired and was given again)
                hook = get_webhook(self.redis, webhook_id)
                if hook is None or not self._ready(webhook_id):
                    return delivered
                claimed = self._next_due(webhook_id)
                if claimed is None:
                    return delivered
                if not self._attempt(hook, *claimed):
                    return delivered
                delivered += 1
            return delivered
        finally:
            self._lease(keys=[lease], args=["release", token])

    def _next_due(self, webhook_id: str) -> tuple[str, dict, int] | None:
        """The due event earliest in feed order, its delivery and its failed attempts."""
        now = self.clock()
        due_key, order_key = keys.webhook_due(webhook_id), keys.webhook_order(webhook_id)
        due = [_text(e) for e in self.redis.zrangebyscore(due_key, "-inf", now, 0, CLAIM_WINDOW)]
        # The events first in feed order are looked at too: one retried after its backoff is
        # due later than a backlog queued before it, and may lie past the earliest-due window.
        head = [_text(e) for e in self.redis.zrange(order_key, 0, CLAIM_WINDOW - 1)]
        pipe = self.redis.pipeline(transaction=False)
        for event_id in head:
            pipe.zscore(due_key, event_id)
        head_due = [
            e for e, at in zip(head, pipe.execute(), strict=True) if at is not None and at <= now
        ]
        due = list(dict.fromkeys([*head_due, *due]))
        if not due:
            return None
        pipe = self.redis.pipeline(transaction=False)
        for event_id in due:
            pipe.zscore(keys.webhook_order(webhook_id), event_id)
        places = pipe.execute()
        tries = self.redis.hmget(keys.webhook_attempts(webhook_id), due)
        # Feed order, except that an event which failed ORDER_KEPT_TRIES times goes last.
        _, _, failures, event_id = min(
            (int(t or 0) >= ORDER_KEPT_TRIES, place or 0, int(t or 0), _text(e))
            for e, place, t in zip(due, places, tries, strict=True)
        )
        raw = self.redis.hget(keys.webhook_deliveries(webhook_id), event_id)
        if raw is None:
            return None
        return event_id, json.loads(raw), failures

    def _attempt(self, hook: Webhook, event_id: str, delivery: dict, failures: int) -> bool:
        body = delivery["body"].encode("utf-8")
        sent_at = self.clock()
        headers = signature_headers(hook.secret, event_id, body, sent_at)
        result = self.post(hook.url, headers, body, self.config)
        now = self.clock()
        entry: dict[str, Any] = {
            "at": _iso(sent_at),
            "event_id": event_id,
            "cursor": delivery.get("cursor"),
            "attempt": failures + 1,
            "status": result.status,
            "error": result.error,
            "ms": int((now - sent_at) * 1000),
        }
        next_try = paused = 0.0
        if result.ok:
            entry["outcome"] = "delivered"
        else:
            give_up_at = float(delivery["queued_at"]) + self.config.retry_seconds
            consecutive = int(
                self.redis.hget(keys.webhook(hook.webhook_id), "consecutive_failures") or 0
            )
            paused = now + backoff(consecutive + 1, self.config)
            if now >= give_up_at:
                entry["outcome"] = "dead"
            else:
                entry["outcome"] = "retry"
                # The last try is at the end of the retry time, not past it.
                next_try = min(now + backoff(failures + 1, self.config), give_up_at)
                entry["next_try_at"] = _iso(next_try)
                if failures + 1 < ORDER_KEPT_TRIES:
                    # The pause ends when this event is due again, so it goes before the
                    # later ones: feed order holds through a short outage.
                    paused = max(paused, next_try)
        self._outcome(
            keys=self._keys(hook.webhook_id),
            args=[
                event_id,
                entry["outcome"],
                repr(next_try),
                repr(paused),
                json.dumps(entry, ensure_ascii=False),
                HISTORY_KEPT,
                _iso(now),
            ],
        )
        extra = {"webhook_id": hook.webhook_id, "bank_id": hook.bank_id, "event_id": event_id}
        if entry["outcome"] == "dead":
            log.warning("webhook delivery given up: %s", result.error, extra=extra)
        elif entry["outcome"] == "retry":
            log.info("webhook delivery failed, will retry: %s", result.error, extra=extra)
        return result.ok

    @staticmethod
    def _keys(webhook_id: str) -> list[str]:
        return [
            keys.webhook(webhook_id),
            keys.webhook_order(webhook_id),
            keys.webhook_due(webhook_id),
            keys.webhook_deliveries(webhook_id),
            keys.webhook_attempts(webhook_id),
            keys.webhook_stats(webhook_id),
            keys.webhook_history(webhook_id),
        ]


__all__ = ["DeliveryConfig", "Deliveries", "PostResult", "backoff", "delivery_body", "http_post"]
