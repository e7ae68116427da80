"""Bank webhooks: registration (URL, secret), listing, removal, delivery history and counters."""

from __future__ import annotations

import ipaddress
import json
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from workflow import keys
from workflow.feed import read_bank_feed
from workflow.tokens import BANK_ID_RE
from workflow.webhook_signature import verify_signature

# An http:// endpoint is accepted only on this machine, and only outside production (a
# receiver under development); every other endpoint must be https.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16
# Printable ASCII without spaces: a secret a bank can paste into any configuration file.
_SECRET_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
# Attempts kept per webhook for `xinbao webhook deliveries`.
HISTORY_KEPT = 500
COUNTERS = ("delivered", "failed_attempts", "dead", "gaps")


class WebhookError(ValueError):
    """A registration refused; the message names the field and the reason."""


@dataclass(frozen=True)
class Webhook:
    """A bank's registered endpoint (the secret is only read to sign)."""

    webhook_id: str
    bank_id: str
    url: str
    secret: str
    created_at: str
    cursor: str


def url_problem(url: str, *, production: bool) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None."""
    if not url or len(url) > MAX_URL_LENGTH:
        return f"give an https:// URL of at most {MAX_URL_LENGTH} characters"
    if not url.isascii() or any(ch.isspace() or not ch.isprintable() for ch in url):
        return "spaces, control or non-ASCII characters are not allowed (percent-encode them)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "give an https:// URL with a host, e.g. https://bank.example/xinbao-hooks"
    if parts.username is not None or parts.password is not None:
        return "no user or password in the URL: the signature authenticates each delivery"
    if parts.fragment:
        return "no #fragment: it is never sent to the server"
    if port == 0:
        return "port 0 is not a port"
    if parts.scheme == "http":
        if production:
            return "XINBAO_ENV=production delivers only over https://"
        if host not in LOCAL_HOSTS and not _loopback(host):
            return "http:// only for 127.0.0.1 or localhost (a local test receiver); use https://"
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot sign deliveries, or None."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"at least {MIN_SECRET_LENGTH} characters"
    if not set(secret) <= _SECRET_CHARS:
        return "printable ASCII only, no spaces"
    return None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")


def feed_end(client: Any, bank_id: str) -> str:
    """The cursor of the bank's newest feed entry ("" when the feed is empty)."""
    cursor = ""
    while entries := read_bank_feed(client, bank_id, cursor or None, limit=1000):
        cursor = entries[-1].cursor
    return cursor


def add_webhook(
    client: Any,
    bank_id: str,
    url: str,
    *,
    now: float,
    secret: str | None = None,
    production: bool = False,
    from_start: bool = False,
) -> Webhook:
    """Register an endpoint for ``bank_id``; it gets the events the bank's feed receives from
    now on (``from_start``: everything the feed still keeps). Raises WebhookError."""
    if not BANK_ID_RE.fullmatch(bank_id or ""):
        raise WebhookError("bank: use A-Z, 0-9, _ . -")
    if not client.exists(keys.bank(bank_id)):
        raise WebhookError(f"bank: no bank {bank_id} in the reference data; load it first")
    problem = url_problem(url, production=production)
    if problem:
        raise WebhookError(f"url: {problem}")
    if secret is not None and (problem := secret_problem(secret)):
        raise WebhookError(f"secret: {problem}")
    hook = Webhook(
        webhook_id="wh_" + secrets.token_hex(8),
        bank_id=bank_id,
        url=url,
        secret=secret if secret is not None else new_secret(),
        created_at=_now_iso(now),
        cursor="" if from_start else feed_end(client, bank_id),
    )
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        keys.webhook(hook.webhook_id),
        mapping={
            "bank_id": hook.bank_id,
            "url": hook.url,
            "secret": hook.secret,
            "created_at": hook.created_at,
            "cursor": hook.cursor,
            "seq": 0,
            "consecutive_failures": 0,
            "paused_until": 0,
        },
    )
    pipe.hset(keys.webhook_stats(hook.webhook_id), mapping=dict.fromkeys(COUNTERS, 0))
    pipe.zadd(keys.webhooks(), {hook.webhook_id: now})
    pipe.execute()
    return hook


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def get_webhook(client: Any, webhook_id: str) -> Webhook | None:
    raw = client.hgetall(keys.webhook(webhook_id))
    if not raw:
        return None
    f = {_text(k): _text(v) for k, v in raw.items()}
    return Webhook(
        webhook_id, f["bank_id"], f["url"], f["secret"], f["created_at"], f.get("cursor", "")
    )


def webhook_ids(client: Any) -> list[str]:
    return [_text(i) for i in client.zrange(keys.webhooks(), 0, -1)]


def list_webhooks(client: Any, bank_id: str | None = None) -> list[Webhook]:
    """Every webhook (of one bank), oldest first."""
    found = [get_webhook(client, i) for i in webhook_ids(client)]
    return [h for h in found if h is not None and bank_id in (None, h.bank_id)]


def remove_webhook(client: Any, webhook_id: str) -> Webhook:
    """Delete the webhook with its pending deliveries and history. Raises WebhookError."""
    hook = get_webhook(client, webhook_id)
    if hook is None:
        raise WebhookError(f"webhook: no webhook {webhook_id}")
    client.delete(
        keys.webhook(webhook_id),
        keys.webhook_stats(webhook_id),
        keys.webhook_order(webhook_id),
        keys.webhook_due(webhook_id),
        keys.webhook_deliveries(webhook_id),
        keys.webhook_attempts(webhook_id),
        keys.webhook_history(webhook_id),
        keys.webhook_lease(webhook_id),
    )
    client.zrem(keys.webhooks(), webhook_id)
    return hook


def history(client: Any, webhook_id: str, limit: int = 50, failed: bool = False) -> list[dict]:
    """The latest delivery attempts, newest first (``failed``: only those that failed)."""
    out = []
    for raw in client.lrange(keys.webhook_history(webhook_id), 0, HISTORY_KEPT - 1):
        entry = json.loads(raw)
        if failed and entry.get("outcome") == "delivered":
            continue
        out.append(entry)
        if len(out) >= limit:
            break
    return out


def webhook_stats(client: Any) -> list[dict[str, Any]]:
    """Per webhook: bank, URL, counters (delivered, failed_attempts, dead, gaps), pending
    deliveries, consecutive failures and last outcomes; for metrics exporters and the CLI."""
    out = []
    for webhook_id in webhook_ids(client):
        pipe = client.pipeline(transaction=False)
        pipe.hmget(keys.webhook(webhook_id), "bank_id", "url", "consecutive_failures")
        pipe.hgetall(keys.webhook_stats(webhook_id))
        pipe.zcard(keys.webhook_order(webhook_id))
        (bank_id, url, consecutive), stats, pending = pipe.execute()
        if bank_id is None:
            continue  # removed meanwhile
        stats = {_text(k): _text(v) for k, v in stats.items()}
        row: dict[str, Any] = {"webhook_id": webhook_id, "bank_id": _text(bank_id)}
        row["url"] = _text(url)
        row.update({name: int(stats.get(name, 0)) for name in COUNTERS})
        row["pending"] = int(pending)
        row["consecutive_failures"] = int(consecutive or 0)
        row["last_delivered_at"] = stats.get("last_delivered_at")
        row["last_failure_at"] = stats.get("last_failure_at")
        out.append(row)
    return out


__all__ = [
    "Webhook",
    "WebhookError",
    "add_webhook",
    "get_webhook",
    "history",
    "list_webhooks",
    "remove_webhook",
    "secret_problem",
    "url_problem",
    "verify_signature",
    "webhook_stats",
]
