"""The simulator's Flask app: API-key login, bearer-protected reads, asynchronous jobs, faults."""

from __future__ import annotations

import contextlib
import itertools
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from flask import Flask, abort, jsonify, request
from werkzeug.routing import BaseConverter

from insurer_sim.book import Book, cover_wire, declaration_wire, policy_wire
from insurer_sim.callbacks import Callbacks
from insurer_sim.faults import Dice, FaultError, Faults, apply_faults, monotonic
from workflow.claim_rules import ClaimFiling, LocalClaimRules
from workflow.deferral_rules import DeferralRequest, LocalDeferralRules

# A token lives this long unless the token_ttl_s fault shortens it (Allianz Trade: one hour).
TOKEN_TTL_S = 3600


class CodeConverter(BaseConverter):
    """One path segment, percent-decoded: policy numbers and buyer codes may hold "/"."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)


class RawPath:
    """WSGI middleware: route on the path as sent (still percent-encoded), so an encoded "/"
    inside a code stays inside its segment; CodeConverter decodes each segment."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            environ["PATH_INFO"] = raw.split("?", 1)[0]
        return self.app(environ, start_response)


@dataclass
class Job:
    job_id: str
    kind: str
    ready_at: float
    result: dict[str, Any]


@dataclass
class Claim:
    claim_id: str
    filing: ClaimFiling
    decided_at: float


@dataclass
class SimState:
    book: Book
    api_keys: frozenset[str]
    faults: Faults
    dice: Dice
    callbacks: Callbacks
    # Jobs stay pending this long before they are processed; claims wait for a decision so long.
    job_delay_s: float = 0.0
    claim_review_s: float = 0.0
    tokens: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    # (policy, buyer, deal) -> what the deal uses of the buyer's limit, as Xinbao reported it.
    usage: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    boot: str = field(default_factory=lambda: secrets.token_hex(3))

    def count(self, name: str) -> None:
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + 1


def create_sim_app(
    book: Book,
    *,
    api_keys: list[str],
    seed: int = 0,
    faults: dict[str, Any] | None = None,
    callback_url: str | None = None,
    callback_secret: str = "",
    job_delay_s: float = 0.0,
    claim_review_s: float = 0.0,
) -> Flask:
    """The simulator app over ``book``; FaultError names a bad fault setting."""
    app = Flask("insurer_sim")
    app.url_map.converters["code"] = CodeConverter
    app.wsgi_app = RawPath(app.wsgi_app)  # type: ignore[method-assign]
    state = SimState(
        book=book,
        api_keys=frozenset(api_keys),
        faults=Faults(),
        dice=Dice(seed),
        callbacks=Callbacks(callback_url, callback_secret),
        job_delay_s=job_delay_s,
        claim_review_s=claim_review_s,
    )
    apply_faults(state.faults, faults or {}, monotonic())
    app.extensions["insurer_sim"] = state
    _register(app, state)
    return app


def _error(status: int, message: str) -> Any:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _register(app: Flask, state: SimState) -> None:  # noqa: C901 - the routes, one by one
    @app.before_request
    def _faults() -> Any:
        if not request.path.startswith("/v1/"):
            return None
        state.count("requests")
        faults = state.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if state.dice.roll(faults.drop_rate):
            state.count("dropped")
            _drop_connection()
        if state.dice.roll(faults.error_rate):
            state.count("errors")
            return _error(503, "injected fault: service unavailable")
        if request.path != "/v1/auth/login" and not _authorized(state):
            state.count("unauthorized")
            return _error(401, "missing, unknown or expired bearer token")
        return None

    @app.errorhandler(ConnectionAbortedError)
    def _dropped(_: Any) -> Any:
        return "", 502  # never reaches the client: its connection is closed

    @app.errorhandler(404)
    def _not_found(_: Any) -> Any:
        return _error(404, "not found")

    @app.errorhandler(400)
    def _bad(exc: Any) -> Any:
        return _error(400, getattr(exc, "description", "bad request"))

    @app.post("/v1/auth/login")
    def login() -> Any:
        body = request.get_json(silent=True) or {}
        if body.get("apiKey") not in state.api_keys:
            return _error(401, "unknown apiKey")
        ttl = state.faults.token_ttl_s
        ttl = TOKEN_TTL_S if ttl is None else ttl
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[token] = monotonic() + ttl
        state.count("logins")
        return jsonify({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})

    @app.get("/v1/policies/<code:policy_no>")
    def policy(policy_no: str) -> Any:
        found = state.book.policies.get(policy_no)
        if found is None:
            return _error(404, "no such policy")
        return jsonify(policy_wire(found))

    @app.get("/v1/policies/<code:policy_no>/buyers/<code:buyer_code>/cover")
    def cover(policy_no: str, buyer_code: str) -> Any:
        with state.lock:
            used = sum(
                (a for (p, b, _), a in state.usage.items() if (p, b) == (policy_no, buyer_code)),
                Decimal(0),
            )
        covers = [
            _with_cut(state, cover_wire(lim, used), buyer_code)
            for lim in state.book.covers(policy_no, buyer_code)
        ]
        return jsonify({"policyNo": policy_no, "buyerCode": buyer_code, "covers": covers})

    @app.post("/v1/policies/<code:policy_no>/buyers/<code:buyer_code>/usage")
    def usage(policy_no: str, buyer_code: str) -> Any:
        """What a deal now uses of the buyer's limit (0: released); the room follows."""
        body = _body("dealId", "amount", "currency")
        amount = _dec(body["amount"], "amount")
        if amount < 0:
            abort(400, "amount: must be 0 or more")
        with state.lock:
            state.usage[(policy_no, buyer_code, str(body["dealId"]))] = amount
        return _job(state, "usage", {"dealId": body["dealId"], "amount": str(amount)})

    @app.get("/v1/policies/<code:policy_no>/buyers/<code:buyer_code>/declarations")
    def declarations(policy_no: str, buyer_code: str) -> Any:
        wanted = request.args.getlist("invoices")
        found = state.book.declarations
        return jsonify(
            {
                "declarations": [
                    declaration_wire(n, found.get((policy_no, buyer_code, n))) for n in wanted
                ]
            }
        )

    @app.get("/v1/policies/<code:policy_no>/buyers/<code:buyer_code>/overdues")
    def overdues(policy_no: str, buyer_code: str) -> Any:
        found = state.book.overdues_of(policy_no, buyer_code)
        return jsonify({"overdues": [{"reportedOn": o.reported_on.isoformat()} for o in found]})

    @app.post("/v1/policies/<code:policy_no>/notices")
    def notice(policy_no: str) -> Any:
        body = _body("dealId", "on")
        reference = f"NPL-{policy_no}-{body['dealId']}"
        return _job(state, "notice", {"reference": reference})

    @app.post("/v1/policies/<code:policy_no>/claims")
    def claim(policy_no: str) -> Any:
        filing = _filing(policy_no, _body(*_FILING_FIELDS))
        with state.lock:
            key = request.headers.get("Idempotency-Key")
            if key and key in state.by_key:
                return _accepted(state.by_key[key])
            claim_id = f"CLM-{state.boot}-{next(state.counter):06d}"
            state.claims[claim_id] = Claim(claim_id, filing, monotonic() + state.claim_review_s)
            answer = _job(state, "claim", {"claimId": claim_id})
        # The insurer tells when it has decided (the job above only acknowledged the filing).
        faults = state.faults
        state.callbacks.send(
            {"type": "claim_decided", "claimId": claim_id, "dealId": filing.deal_id},
            delay_s=state.claim_review_s + faults.late_callbacks_ms / 1000,
            copies=2 if faults.duplicate_callbacks else 1,
        )
        return answer

    @app.get("/v1/claims/<code:claim_id>")
    def claim_status(claim_id: str) -> Any:
        found = state.claims.get(claim_id)
        if found is None:
            return _error(404, "no such claim")
        return jsonify(_claim_wire(found))

    @app.post("/v1/policies/<code:policy_no>/deferrals")
    def deferral(policy_no: str) -> Any:
        asked = _deferral(policy_no, _body(*_DEFERRAL_FIELDS))
        consent = LocalDeferralRules().decide(asked, state.book.policies.get(policy_no))
        result = {
            "granted": consent.granted,
            "reference": consent.reference,
            "reasons": list(consent.reasons),
        }
        return _job(state, "deferral", result)

    @app.get("/v1/jobs/<code:job_id>")
    def job(job_id: str) -> Any:
        found = state.jobs.get(job_id)
        if found is None:
            return _error(404, "no such job")
        return jsonify(_job_wire(state, found))

    @app.get("/admin/faults")
    def get_faults() -> Any:
        return jsonify({**state.faults.to_wire(), "seed": state.dice.seed})

    @app.post("/admin/faults")
    def set_faults() -> Any:
        changes = request.get_json(silent=True)
        try:
            apply_faults(state.faults, changes, monotonic())
        except FaultError as exc:
            return _error(400, str(exc))
        if "seed" in changes:
            state.dice.reseed(int(changes["seed"]))
        if changes.get("expire_tokens"):
            with state.lock:
                state.tokens.clear()
        return get_faults()

    @app.post("/admin/reset")
    def reset() -> Any:
        """No faults, no tokens, no counters, the dice reseeded (jobs and claims are kept)."""
        with state.lock:
            state.faults = Faults()
            state.tokens.clear()
            state.stats.clear()
        state.dice.reseed(state.dice.seed)
        return get_faults()

    @app.get("/admin/stats")
    def stats() -> Any:
        with state.lock:
            out = dict(state.stats)
        out["callbacks_sent"] = state.callbacks.sent
        out["callbacks_delivered"] = state.callbacks.delivered
        return jsonify(out)

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})


def _drop_connection() -> None:
    """Close the client's connection without an answer (the dev server exposes its socket)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        abort(502)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    # The server's attempt to answer now fails on the closed socket, and it moves on.
    raise ConnectionAbortedError("injected fault: connection dropped")


def _authorized(state: SimState) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    with state.lock:
        expires = state.tokens.get(token)
        if expires is None:
            return False
        if monotonic() >= expires:
            del state.tokens[token]
            return False
    return True


def _with_cut(state: SimState, wire: dict, buyer_code: str) -> dict:
    cut = state.faults.limit_cut
    if cut is None or cut.buyer != buyer_code:
        return wire
    takes_effect = state.faults.limit_cut_set_at + cut.after_s
    if monotonic() >= takes_effect:
        return {**wire, "amount": str(cut.amount), "room": str(cut.amount)}
    at = datetime.now(UTC) + timedelta(seconds=takes_effect - monotonic())
    return {**wire, "pendingChange": {"amount": str(cut.amount), "effectiveAt": at.isoformat()}}


def _body(*required: str) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    missing = [name for name in required if name not in body]
    if missing:
        abort(400, f"missing: {', '.join(missing)}")
    return body


def _job(state: SimState, kind: str, result: dict[str, Any]) -> Any:
    """Start a job (or return the one an equal Idempotency-Key started) and answer 202."""
    key = request.headers.get("Idempotency-Key")
    with state.lock:
        if key and key in state.by_key:
            return _accepted(state.by_key[key])
        job_id = f"JOB-{state.boot}-{next(state.counter):06d}"
        job = Job(job_id, kind, monotonic() + state.job_delay_s, result)
        state.jobs[job_id] = job
        if key:
            state.by_key[key] = job_id
    faults = state.faults
    payload = {"type": "job_processed", "jobId": job_id, "status": "processed", "result": result}
    delay = state.job_delay_s + faults.late_callbacks_ms / 1000
    state.callbacks.send(payload, delay_s=delay, copies=2 if faults.duplicate_callbacks else 1)
    return _accepted(job_id)


def _accepted(job_id: str) -> Any:
    response = jsonify({"jobId": job_id})
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return response


def _job_wire(state: SimState, job: Job) -> dict[str, Any]:
    if monotonic() < job.ready_at:
        return {"jobId": job.job_id, "status": "pending"}
    return {"jobId": job.job_id, "status": "processed", "result": job.result}


def _claim_wire(claim: Claim) -> dict[str, Any]:
    out: dict[str, Any] = {"claimId": claim.claim_id, "dealId": claim.filing.deal_id}
    if monotonic() < claim.decided_at:
        return {**out, "decision": "pending"}
    decided = LocalClaimRules().decide(claim.filing)
    if not decided.paid:
        decision = "refused"
    elif decided.reasons:
        decision = "partial"
    else:
        decision = "approved"
    return {
        **out,
        "decision": decision,
        "coveredLoss": str(decided.covered_loss),
        "indemnity": str(decided.indemnity),
        "reasons": list(decided.reasons),
    }


_FILING_FIELDS = (
    "dealId",
    "buyerCode",
    "currency",
    "lossAmount",
    "documents",
    "filedOn",
    "noticeFiledOn",
    "noticeDeadline",
    "claimDeadline",
    "coverageRatio",
    "insuredCap",
)
_DEFERRAL_FIELDS = (
    "dealId",
    "requestNumber",
    "buyerCode",
    "currency",
    "outstanding",
    "firstDueDate",
    "dueDate",
    "newDueDate",
    "daysPastDue",
    "deferralsBefore",
    "askedOn",
)


def _dec(value: Any, name: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        abort(400, f"{name}: not a decimal")
    if not out.is_finite():
        abort(400, f"{name}: not a decimal")
    return out


def _day(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        abort(400, f"{name}: not a date")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        abort(400, f"{name}: not an integer")
    return value


def _filing(policy_no: str, b: dict[str, Any]) -> ClaimFiling:
    return ClaimFiling(
        deal_id=str(b["dealId"]),
        policy_no=policy_no,
        buyer_code=str(b["buyerCode"]),
        currency=str(b["currency"]),
        loss_amount=_dec(b["lossAmount"], "lossAmount"),
        documents=tuple(str(d) for d in b["documents"] or ()),
        filed_on=_day(b["filedOn"], "filedOn"),
        notice_filed_on=_day(b["noticeFiledOn"], "noticeFiledOn"),
        notice_deadline=_day(b["noticeDeadline"], "noticeDeadline"),
        claim_deadline=_day(b["claimDeadline"], "claimDeadline"),
        coverage_ratio=_dec(b["coverageRatio"], "coverageRatio"),
        insured_cap=_dec(b["insuredCap"], "insuredCap"),
    )


def _deferral(policy_no: str, b: dict[str, Any]) -> DeferralRequest:
    return DeferralRequest(
        deal_id=str(b["dealId"]),
        request_number=_int(b["requestNumber"], "requestNumber"),
        policy_no=policy_no,
        buyer_code=str(b["buyerCode"]),
        currency=str(b["currency"]),
        outstanding=_dec(b["outstanding"], "outstanding"),
        first_due_date=_day(b["firstDueDate"], "firstDueDate"),
        due_date=_day(b["dueDate"], "dueDate"),
        new_due_date=_day(b["newDueDate"], "newDueDate"),
        days_past_due=_int(b["daysPastDue"], "daysPastDue"),
        deferrals_before=_int(b["deferralsBefore"], "deferralsBefore"),
        asked_on=_day(b["askedOn"], "askedOn"),
    )
