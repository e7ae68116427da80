"""`xinbao webhook`: register, list and remove banks' webhooks; show their delivery history."""

from __future__ import annotations

import sys
import time

import click
import redis

from web.cli_support import fail
from workflow import webhooks
from workflow.identifiers import printable
from workflow.settings import load_settings


@click.group("webhook")
def webhook() -> None:
    """Banks' webhooks: every event a bank may see, posted signed to its HTTPS endpoint."""


_REDIS_URL = click.option(
    "--redis-url", envvar="REDIS_URL", help="Redis to use (default $REDIS_URL)."
)


def _client(redis_url: str | None) -> redis.Redis:
    return redis.Redis.from_url(redis_url or load_settings().redis_url, decode_responses=True)


@webhook.command("add")
@click.option("--bank", "bank_id", required=True, metavar="BANK_ID", help="The bank it serves.")
@click.option("--url", required=True, help="Its https:// endpoint.")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the signing secret from stdin instead of generating one.",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="Also deliver the events the bank's feed still keeps (default: from now on).",
)
@_REDIS_URL
def webhook_add(
    bank_id: str, url: str, secret_stdin: bool, from_start: bool, redis_url: str | None
) -> None:
    """Register URL for BANK_ID. The signing secret is printed once: give it to the bank
    (a secret is never a command-line argument, where other users could read it)."""
    secret = None
    if secret_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            fail("no secret on stdin")
    try:
        hook = webhooks.add_webhook(
            _client(redis_url),
            bank_id,
            url,
            now=time.time(),
            secret=secret,
            production=load_settings().production,
            from_start=from_start,
        )
    except webhooks.WebhookError as exc:
        fail(str(exc))
    click.echo(f"added webhook {hook.webhook_id} for bank {hook.bank_id}: {hook.url}")
    if secret is None:
        click.echo(f"signing secret (shown only now): {hook.secret}")


@webhook.command("list")
@click.option("--bank", "bank_id", metavar="BANK_ID", help="Only this bank's webhooks.")
@_REDIS_URL
def webhook_list(bank_id: str | None, redis_url: str | None) -> None:
    """List webhooks with their counters (never their secrets)."""
    rows = [
        r for r in webhooks.webhook_stats(_client(redis_url)) if bank_id in (None, r["bank_id"])
    ]
    click.echo(
        f"{'ID':<20}  {'BANK':<12}  {'DELIVERED':>9}  {'PENDING':>7}  {'FAILED':>6}  "
        f"{'DEAD':>4}  {'LAST DELIVERED (UTC)':<29}  URL"
    )
    for r in rows:
        click.echo(
            f"{r['webhook_id']:<20}  {r['bank_id']:<12}  {r['delivered']:>9}  {r['pending']:>7}  "
            f"{r['failed_attempts']:>6}  {r['dead']:>4}  {r['last_delivered_at'] or '-':<29}  "
            f"{printable(r['url'])}"
        )


@webhook.command("remove")
@click.argument("webhook_id")
@_REDIS_URL
def webhook_remove(webhook_id: str, redis_url: str | None) -> None:
    """Remove WEBHOOK_ID: nothing more is posted to it; its pending events are dropped."""
    try:
        hook = webhooks.remove_webhook(_client(redis_url), webhook_id)
    except webhooks.WebhookError as exc:
        fail(str(exc))
    click.echo(f"removed webhook {hook.webhook_id} of bank {hook.bank_id}: {hook.url}")


@webhook.command("deliveries")
@click.argument("webhook_id")
@click.option("--failed", is_flag=True, help="Only failed attempts (retried or given up).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@_REDIS_URL
def webhook_deliveries(webhook_id: str, failed: bool, limit: int, redis_url: str | None) -> None:
    """The latest delivery attempts of WEBHOOK_ID, newest first."""
    client = _client(redis_url)
    if webhooks.get_webhook(client, webhook_id) is None:
        fail(f"webhook: no webhook {webhook_id}")
    click.echo(
        f"{'AT (UTC)':<29}  {'EVENT':<28}  {'TRY':>3}  {'OUTCOME':<9}  {'STATUS':>6}  "
        f"{'MS':>6}  ERROR / NEXT TRY"
    )
    for e in webhooks.history(client, webhook_id, limit=limit, failed=failed):
        note = e.get("error") or ""
        if e.get("next_try_at"):
            note = f"{note}; next try {e['next_try_at']}" if note else e["next_try_at"]
        click.echo(
            f"{e.get('at', '-'):<29}  {e.get('event_id') or '-':<28}  {e.get('attempt') or '-':>3}"
            f"  {e.get('outcome', '-'):<9}  {e.get('status') or '-':>6}  {e.get('ms', '-'):>6}  "
            f"{printable(note)}"
        )
