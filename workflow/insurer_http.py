"""The HTTP insurer adapter: the gateway over an insurer's JSON API (xinbao insurer-sim's shape).

Every call has a timeout; transport failures, 5xx and 429 are retried a bounded number of times
with exponential backoff and jitter (tenacity), never a 4xx; a circuit breaker (pybreaker) stops
calling an insurer that keeps failing and lets one call through after a pause. The API key buys a
bearer token that is used until shortly before its ``expires_in`` (tokens are not renewable: a
401 means log in again, once). Mutating calls answer 202 with a job id, polled for a bounded
time. Whenever no answer can be had, :class:`InsurerUnavailable` is raised and the deal waits.
The answers are read, and the request bodies written, in ``workflow.insurer_wire``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import pybreaker
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
)

from workflow import insurer_wire as wire
from workflow.claim_rules import ClaimDecision, ClaimFiling
from workflow.deal import Application
from workflow.deferral_rules import DeferralConsent, DeferralRequest
from workflow.gateway import InsurerGateway, InsurerUnavailable, ReferenceDataInsurer
from workflow.limit_usage import LimitUsage
from workflow.reference import CoverFacts, ReferenceRepository
from workflow.settings import Settings

log = logging.getLogger("xinbao.insurer_http")


@dataclass(frozen=True)
class HttpInsurerConfig:
    base_url: str
    api_key: str
    # Seconds for each request (connect, read, write and pool each).
    timeout_s: float = 5.0
    # Tries of one request in all (the first and its retries), and the backoff between them.
    attempts: int = 3
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 2.0
    # How long a job may stay pending before the call gives up, and how often it is polled.
    job_wait_s: float = 10.0
    job_poll_s: float = 0.2
    # The breaker opens after this many failed calls in a row and half-opens after the pause.
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    # A token is renewed this long before the insurer says it expires (at most half its life).
    token_margin_s: float = 30.0


class _Transient(Exception):
    """A 5xx or 429 answer: worth another try."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"insurer answered {response.status_code}")
        self.response = response


class _Refused(Exception):
    """The insurer refused our credentials: no retry helps, but the deal still waits."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | httpx.TransportError)


def _code(value: str) -> str:
    """One path segment: codes may hold "/", "#" or spaces."""
    return quote(value, safe="")


class HttpInsurer:
    """The insurer gateway over HTTP (see workflow.gateway.InsurerGateway)."""

    def __init__(
        self,
        config: HttpInsurerConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.client = httpx.Client(
            base_url=config.base_url,
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=config.breaker_failures,
            reset_timeout=config.breaker_reset_s,
            name="insurer",
        )
        self.clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # --- the gateway -------------------------------------------------------------------------

    def cover_facts(self, application: Application) -> CoverFacts:
        p, b = _code(application.policy_no), _code(application.buyer.code)
        invoices = [inv.number for inv in application.invoices]
        policy = self._get(f"/v1/policies/{p}", missing_ok=True)
        cover = self._get(f"/v1/policies/{p}/buyers/{b}/cover")
        declared = (
            self._get(f"/v1/policies/{p}/buyers/{b}/declarations", params={"invoices": invoices})
            if invoices
            else {"declarations": []}
        )
        overdues = self._get(f"/v1/policies/{p}/buyers/{b}/overdues")
        return wire.read(
            "cover facts",
            lambda: wire.cover_facts(
                application.policy_no,
                application.buyer.code,
                invoices,
                policy,
                cover,
                declared,
                overdues,
            ),
        )

    def notify_possible_loss(self, deal_id: str, policy_no: str, on: date) -> str:
        result = self._job(
            f"/v1/policies/{_code(policy_no)}/notices",
            {"dealId": deal_id, "on": on.isoformat()},
            key=f"notice:{policy_no}:{deal_id}",
        )
        return wire.read("notice", lambda: str(result["reference"]))

    def report_limit_usage(self, usage: LimitUsage) -> None:
        self._job(
            f"/v1/policies/{_code(usage.policy_no)}/buyers/{_code(usage.buyer_code)}/usage",
            {
                "dealId": usage.deal_id,
                "currency": usage.currency,
                "amount": str(usage.amount),
                "reportId": usage.report_id,
            },
            key=f"usage:{usage.report_id}",
        )

    def decide_claim(self, filing: ClaimFiling) -> ClaimDecision | None:
        result = self._job(
            f"/v1/policies/{_code(filing.policy_no)}/claims",
            wire.claim_body(filing),
            key=f"claim:{filing.policy_no}:{filing.deal_id}",
        )
        claim_id = wire.read("claim", lambda: str(result["claimId"]))
        answer = self._get(f"/v1/claims/{_code(claim_id)}")
        return wire.read("claim decision", lambda: wire.claim_decision(answer, filing.loss_amount))

    def consent_to_deferral(self, request: DeferralRequest) -> DeferralConsent:
        result = self._job(
            f"/v1/policies/{_code(request.policy_no)}/deferrals",
            wire.deferral_body(request),
            key=f"deferral:{request.policy_no}:{request.deal_id}:{request.request_number}",
        )
        return wire.read(
            "deferral",
            lambda: DeferralConsent(
                granted=wire.boolean(result["granted"]),
                reference=str(result["reference"]),
                reasons=tuple(str(r) for r in result.get("reasons") or ()),
            ),
        )

    # --- requests ----------------------------------------------------------------------------

    def _get(self, path: str, *, params: Any = None, missing_ok: bool = False) -> Any:
        response = self._call("GET", path, params=params)
        if missing_ok and response.status_code == 404:
            return None
        return self._json(response, path)

    def _job(self, path: str, body: dict[str, Any], *, key: str) -> dict[str, Any]:
        """Start a job (the Idempotency-Key makes a repeat return the same job) and wait for
        its result."""
        answer = self._json(
            self._call("POST", path, json=body, headers={"Idempotency-Key": key}), path
        )
        job_id = wire.read("job", lambda: str(answer["jobId"]))
        polling = Retrying(
            retry=retry_if_result(lambda job: job.get("status") != "processed"),
            stop=stop_after_delay(self.config.job_wait_s),
            wait=wait_fixed(self.config.job_poll_s),
        )
        try:
            job = polling(self._get, f"/v1/jobs/{_code(job_id)}")
        except RetryError:
            raise InsurerUnavailable(f"insurer job {job_id} still pending") from None
        result = job.get("result")
        if not isinstance(result, dict):
            raise InsurerUnavailable(f"insurer job {job_id} processed without a result")
        return result

    def _json(self, response: httpx.Response, path: str) -> Any:
        if response.status_code >= 400:
            # A 4xx other than 401 is the insurer refusing the question as asked: a bug or a
            # contract change, logged loudly; the deal still waits rather than fail.
            log.error("insurer refused %s: %s %s", path, response.status_code, response.text[:200])
            raise InsurerUnavailable(f"insurer answered {response.status_code} to {path}")
        try:
            return response.json()
        except ValueError:
            raise InsurerUnavailable(f"insurer answered {path} with no JSON") from None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request through the breaker and the retries; InsurerUnavailable when it fails."""
        try:
            return self.breaker.call(self._with_retries, method, path, kwargs)
        except pybreaker.CircuitBreakerError as exc:
            raise InsurerUnavailable("insurer circuit open: not calling for now") from exc
        except _Refused as exc:
            raise InsurerUnavailable(str(exc)) from exc
        except _Transient as exc:
            raise InsurerUnavailable(f"{exc} to {method} {path}") from exc
        except httpx.TransportError as exc:
            raise InsurerUnavailable(f"{type(exc).__name__} on {method} {path}") from exc

    def _with_retries(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        config = self.config
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(config.attempts),
            # Exponential backoff plus up to one initial step of jitter (written so for tenacity
            # 8 and 9 alike: wait_exponential_jitter's first argument was renamed).
            wait=wait_exponential(multiplier=config.backoff_initial_s, max=config.backoff_max_s)
            + wait_random(0, config.backoff_initial_s),
            reraise=True,
        )
        return retrying(self._send, method, path, kwargs)

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        token = self._bearer()
        response = self._request(method, path, token, kwargs)
        if response.status_code == 401:
            # The token expired early or was revoked: log in again, once.
            self._forget(token)
            response = self._request(method, path, self._bearer(), kwargs)
            if response.status_code == 401:
                raise _Refused(f"insurer refused a fresh token for {method} {path}")
        return response

    def _request(
        self, method: str, path: str, token: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        headers = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {token}"}
        response = self.client.request(method, path, **{**kwargs, "headers": headers})
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(response)
        return response

    # --- the token ---------------------------------------------------------------------------

    def _bearer(self) -> str:
        with self._lock:
            if self._token is not None and self.clock() < self._token_until:
                return self._token
        response = self.client.post("/v1/auth/login", json={"apiKey": self.config.api_key})
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(response)
        if response.status_code != 200:
            log.error("insurer refused the API key: %s", response.status_code)
            raise _Refused(f"insurer refused the API key ({response.status_code})")
        try:
            answer = response.json()
            token = str(answer["access_token"])
            lifetime = float(answer["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise _Refused("insurer login answered without a token") from None
        margin = min(self.config.token_margin_s, lifetime / 2)
        with self._lock:
            self._token, self._token_until = token, self.clock() + lifetime - margin
        return token

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None


def build_insurer(settings: Settings, reference: ReferenceRepository) -> InsurerGateway:
    """The gateway the settings choose: the local registry, or the HTTP adapter."""
    if settings.insurer == "local":
        return ReferenceDataInsurer(reference)
    return HttpInsurer(
        HttpInsurerConfig(
            base_url=settings.insurer_url,
            api_key=settings.insurer_api_key,
            timeout_s=settings.insurer_timeout_seconds,
            attempts=settings.insurer_attempts,
            job_wait_s=settings.insurer_job_wait_seconds,
            breaker_failures=settings.insurer_breaker_failures,
            breaker_reset_s=settings.insurer_breaker_reset_seconds,
        )
    )
