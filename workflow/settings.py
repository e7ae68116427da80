"""Every setting Xinbao reads from the environment, parsed and typed in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

# XINBAO_ENV's accepted values. Only "production" changes behaviour; a value outside the list
# (a typo such as "prod") is refused rather than quietly run as a development stack.
ENVIRONMENTS = ("development", "production", "test")


class SettingsError(ValueError):
    """An environment variable holds a value Xinbao refuses; the message names it."""


def _environment(raw: str | None) -> str:
    value = (raw or "").strip().lower() or "development"
    if value not in ENVIRONMENTS:
        raise SettingsError(
            f"XINBAO_ENV={raw!r} is not one of {', '.join(ENVIRONMENTS)} (unset means development)"
        )
    return value


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


# XINBAO_CUSTOMS_CHECK: whether a declaration number with no customs record is refused.
# "auto": once the customs feed has been imported at least once (before, nothing can be found);
# "on": always (a bank that relies on the feed: an empty feed refuses every declaration);
# "off": customs records are not consulted at all.
CUSTOMS_CHECK_MODES = ("auto", "on", "off")


def _customs_check(raw: str | None) -> str:
    value = (raw or "").strip().lower() or "auto"
    if value not in CUSTOMS_CHECK_MODES:
        raise SettingsError(
            f"XINBAO_CUSTOMS_CHECK={raw!r} is not one of {', '.join(CUSTOMS_CHECK_MODES)}"
        )
    return value


def _tolerance(name: str, default: Decimal) -> Decimal:
    """A share: "0.05" or "5%"; from 0 to 1 (100 %)."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = Decimal(raw[:-1].strip()) / 100 if raw.endswith("%") else Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not 0 <= value <= 1:
        raise SettingsError(f'{name}={raw!r} is not a share from 0 to 1 (e.g. "0.05" or "5%")')
    return value


def _positive(name: str, default: int) -> int:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r} is not a whole number of at least 1")
    return int(raw)


def _date(name: str) -> date | None:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Settings:
    """Runtime settings; build with :func:`load_settings` so tests can override the environment."""

    redis_url: str
    broker_url: str
    secret_key: str
    # A worker-owned step (verify, route) not finished this long after it was due is re-dispatched.
    stale_after_seconds: int
    # How often beat sweeps missed bank deadlines and stranded deals.
    sweep_interval_seconds: float
    # How long a deal waits on hold (insurer unreachable) before verification is tried again.
    hold_retry_seconds: int
    # Longest time Celery may hold an unacknowledged message before Redis redelivers it.
    visibility_timeout_seconds: int
    insurer_retry_limit: int
    # How long an Idempotency-Key keeps returning the deal it created.
    idempotency_ttl_seconds: int
    # One of ENVIRONMENTS: "production" (docker-compose sets it) refuses the public demo
    # tokens; "development" and "test" behave alike.
    env: str = "development"
    # A web user is locked out this long after LOGIN_ATTEMPTS wrong passwords in a row.
    lockout_seconds: int = 900
    # A page session ends after this long without a request (each request renews it).
    session_idle_seconds: int = 1800
    # Approve, decline and disburse need the password entered at most this long ago.
    fresh_login_seconds: int = 600
    # An approval never disbursed is cancelled this many days after it was given (a bank's
    # own approval_lapse_days comes first).
    approval_lapse_days: int = 30
    # The latest due date a deferral (延期还本付息) may set: the end of the relief programme
    # the banks apply. None = no date of Xinbao's own (the insurer's consent still bounds it).
    deferral_latest_date: date | None = None
    # The insurer gateway: "local" (the loaded reference data), "http" (an insurer API at
    # insurer_url with insurer_api_key) or "sim" (http to `xinbao insurer-sim`, its defaults).
    insurer: str = "local"
    insurer_url: str = ""
    insurer_api_key: str = ""
    # Each insurer request's timeout, tries per request, longest wait for a job, and the circuit
    # breaker's failures before it opens and its pause before it lets one call through.
    insurer_timeout_seconds: float = 5.0
    insurer_attempts: int = 3
    insurer_job_wait_seconds: float = 10.0
    insurer_breaker_failures: int = 5
    insurer_breaker_reset_seconds: float = 30.0
    # The secret the insurer signs its webhook callbacks with ("" = callbacks refused).
    insurer_callback_secret: str = ""
    # Customs export records (docs/trade-documents.md): when a declaration with no record is
    # refused (CUSTOMS_CHECK_MODES), and how far an invoice may differ from the declared
    # amount (a share of the declared amount) before it is TRADE_DOCUMENTS_MISMATCH.
    customs_check: str = "auto"
    customs_tolerance: Decimal = Decimal("0.05")
    # Each bank's event feed (GET /api/v1/events) keeps its entries this many days; a cursor
    # older than what is kept is answered 410 Gone.
    feed_retention_days: int = 30
    # How often a worker checks that its consumer still takes tasks while some wait (it is
    # reconnected after three checks in a row found it idle: tasks/stall_guard.py).
    stall_check_seconds: float = 10.0
    # Redis under Sentinel (docs/scaling.md): the sentinels' (host, port) and the name they
    # know the primary by; none = redis_url is the server itself. With sentinels, redis_url
    # gives only the database number and the primary's password.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "xinbao"
    redis_sentinel_password: str = ""
    # Before a state-changing API call answers, one replica must have acknowledged its write
    # (WAIT 1 <ms>); else 503. Off by default: it costs a replication round trip per write.
    require_replica_ack: bool = False
    replica_ack_timeout_ms: int = 1000
    # The bearer token Prometheus sends to /metrics ("" = open in development, and /metrics
    # refused in production: operators' figures are nobody else's business).
    metrics_token: str = ""
    # Bank webhooks (README "Webhooks"): how often beat looks for new events to deliver; an
    # event not delivered this long after it was queued is given up (dead); the first retry's
    # wait, doubled each failure up to the longest wait; each POST's connect and read timeouts.
    webhook_dispatch_seconds: float = 2.0
    webhook_retry_hours: float = 24.0
    webhook_backoff_seconds: float = 5.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_connect_timeout_seconds: float = 3.0
    webhook_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _environment(self.env)
        _customs_check(self.customs_check)

    @property
    def production(self) -> bool:
        return self.env == "production"


INSURERS = ("local", "http", "sim")
# Where `xinbao insurer-sim` listens and the key it accepts when started without options.
SIM_URL = "http://127.0.0.1:5100"
SIM_API_KEY = "sim-dev-api-key"


def _insurer_settings() -> dict:
    kind = (os.environ.get("XINBAO_INSURER") or "local").strip().lower()
    if kind not in INSURERS:
        raise SettingsError(f"XINBAO_INSURER={kind!r} is not one of {', '.join(INSURERS)}")
    url = (os.environ.get("XINBAO_INSURER_URL") or "").strip()
    key = os.environ.get("XINBAO_INSURER_API_KEY") or ""
    if kind == "sim":
        url, key = url or SIM_URL, key or SIM_API_KEY
    if kind == "http" and not (url and key):
        raise SettingsError(
            "XINBAO_INSURER=http needs XINBAO_INSURER_URL and XINBAO_INSURER_API_KEY"
        )
    return {
        "insurer": kind,
        "insurer_url": url,
        "insurer_api_key": key,
        "insurer_timeout_seconds": _float("XINBAO_INSURER_TIMEOUT_SECONDS", 5.0),
        "insurer_attempts": _int("XINBAO_INSURER_ATTEMPTS", 3),
        "insurer_job_wait_seconds": _float("XINBAO_INSURER_JOB_WAIT_SECONDS", 10.0),
        "insurer_breaker_failures": _int("XINBAO_INSURER_BREAKER_FAILURES", 5),
        "insurer_breaker_reset_seconds": _float("XINBAO_INSURER_BREAKER_RESET_SECONDS", 30.0),
        "insurer_callback_secret": os.environ.get("XINBAO_INSURER_CALLBACK_SECRET") or "",
    }


def _sentinels(raw: str | None) -> tuple[tuple[str, int], ...]:
    """REDIS_SENTINELS: "host:port,host:port" (26379 when a port is left out)."""
    found = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS={raw!r}: {item!r} is not host:port")
        found.append((host, int(port)))
    return tuple(found)


def _flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not 1 or 0")


def sentinel_broker_url(redis_url: str, sentinels: tuple[tuple[str, int], ...]) -> str:
    """Celery's broker URL for the same primary: one ``sentinel://`` URL per sentinel,
    with the database number (and password) of ``redis_url``."""
    parts = urlsplit(redis_url)
    db = (parts.path or "/0").lstrip("/") or "0"
    auth = f":{parts.password}@" if parts.password else ""
    return ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinels)
def _webhook_settings() -> dict:
    values = {
        "webhook_dispatch_seconds": _float("XINBAO_WEBHOOK_DISPATCH_SECONDS", 2.0),
        "webhook_retry_hours": _float("XINBAO_WEBHOOK_RETRY_HOURS", 24.0),
        "webhook_backoff_seconds": _float("XINBAO_WEBHOOK_BACKOFF_SECONDS", 5.0),
        "webhook_backoff_max_seconds": _float("XINBAO_WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0),
        "webhook_connect_timeout_seconds": _float("XINBAO_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3.0),
        "webhook_timeout_seconds": _float("XINBAO_WEBHOOK_TIMEOUT_SECONDS", 10.0),
    }
    for name, value in values.items():
        # A zero or negative wait would spin; NaN would never compare.
        if not value > 0 or value == float("inf"):
            env_name = "XINBAO_" + name.upper()
            raise SettingsError(f"{env_name}={value!r} is not a positive number")
    return values


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment); SettingsError names a
    refused value."""
    if env is not None:
        saved = dict(os.environ)
        os.environ.update(env)
    try:
        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        sentinels = _sentinels(os.environ.get("REDIS_SENTINELS"))
        default_broker = sentinel_broker_url(redis_url, sentinels) if sentinels else redis_url
        return Settings(
            redis_url=redis_url,
            broker_url=os.environ.get("CELERY_BROKER_URL", default_broker),
            secret_key=os.environ.get("SECRET_KEY", "dev-only-not-secret"),
            stale_after_seconds=_int("XINBAO_STALE_AFTER_SECONDS", 60),
            sweep_interval_seconds=_float("XINBAO_SWEEP_INTERVAL_SECONDS", 10.0),
            hold_retry_seconds=_int("XINBAO_HOLD_RETRY_SECONDS", 300),
            visibility_timeout_seconds=_int("XINBAO_VISIBILITY_TIMEOUT_SECONDS", 3600),
            insurer_retry_limit=_int("XINBAO_INSURER_RETRY_LIMIT", 5),
            idempotency_ttl_seconds=_int("XINBAO_IDEMPOTENCY_TTL_SECONDS", 86400),
            env=_environment(os.environ.get("XINBAO_ENV")),
            lockout_seconds=_int("XINBAO_LOCKOUT_SECONDS", 900),
            session_idle_seconds=_int("XINBAO_SESSION_IDLE_SECONDS", 1800),
            fresh_login_seconds=_int("XINBAO_FRESH_LOGIN_SECONDS", 600),
            approval_lapse_days=_int("XINBAO_APPROVAL_LAPSE_DAYS", 30),
            deferral_latest_date=_date("XINBAO_DEFERRAL_LATEST_DATE"),
            **_insurer_settings(),
            customs_check=_customs_check(os.environ.get("XINBAO_CUSTOMS_CHECK")),
            customs_tolerance=_tolerance("XINBAO_CUSTOMS_TOLERANCE", Decimal("0.05")),
            feed_retention_days=_positive("XINBAO_FEED_RETENTION_DAYS", 30),
            stall_check_seconds=_float("XINBAO_STALL_CHECK_SECONDS", 10.0),
            redis_sentinels=sentinels,
            redis_sentinel_master=(
                os.environ.get("REDIS_SENTINEL_MASTER") or "xinbao"
            ).strip(),
            redis_sentinel_password=os.environ.get("REDIS_SENTINEL_PASSWORD") or "",
            require_replica_ack=_flag("XINBAO_REQUIRE_REPLICA_ACK"),
            replica_ack_timeout_ms=_int("XINBAO_REPLICA_ACK_TIMEOUT_MS", 1000),
            metrics_token=(os.environ.get("XINBAO_METRICS_TOKEN") or "").strip(),
            **_webhook_settings(),
        )
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)
