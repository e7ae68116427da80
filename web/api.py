"""The JSON API, /api/v1: exporters submit and follow deals, banks decide on theirs."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from tasks.pipeline import dispatch_route, dispatch_settle_claim, publish_drain
from web.bearer import current_principal, require
from web.errors import ApiError
from web.replica_ack import require_replica_ack
from web.schemas import (
    CancelSchema,
    ClaimSchema,
    DealRequestSchema,
    DecisionSchema,
    DeferralSchema,
    DisbursementCheckSchema,
    DisbursementSchema,
    FeedQuerySchema,
    ListQuerySchema,
    NoticeSchema,
    RecoverySchema,
    RepaymentSchema,
    WithdrawSchema,
    deal_view,
)
from workflow import keys
from workflow.deal import Deal
from workflow.feed import FeedCursorAhead, FeedCursorExpired, read_bank_feed
from workflow.money import fmt
from workflow.pipeline import (
    DealNotFound,
    Decision,
    Deferral,
    Disbursement,
    Repayment,
    Workflow,
)
from workflow.portfolio import figures
from workflow.states import State
from workflow.visibility import as_seen_by_bank, exporter_events, holds

# Printable ASCII (an HTTP structured-field string), not blank: header values arrive as
# Latin-1, and a key goes into a Redis key name and log lines.
IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*")

api = Blueprint("api", __name__, url_prefix="/api/v1")
# XINBAO_REQUIRE_REPLICA_ACK=1: a write answers 2xx only once a replica holds it.
api.after_request(require_replica_ack)

_deal_request = DealRequestSchema()
_decision = DecisionSchema()
_withdraw = WithdrawSchema()
_cancel = CancelSchema()
_disbursement = DisbursementSchema()
_disbursement_check = DisbursementCheckSchema()
_deferral = DeferralSchema()
_repayment = RepaymentSchema()
_notice = NoticeSchema()
_claim = ClaimSchema()
_recovery = RecoverySchema()
_list_query = ListQuerySchema()
_feed_query = FeedQuerySchema()


def flow() -> Workflow:
    return current_app.extensions["xinbao"]


def json_body() -> Any:
    if not request.is_json:
        raise ApiError(
            415, "UNSUPPORTED_MEDIA_TYPE", "send a JSON body (Content-Type: application/json)"
        )
    try:
        body = request.get_json()
    except (BadRequest, RecursionError, ValueError):
        raise ApiError(400, "MALFORMED_JSON", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "the body must be a JSON object",
            {"_body": ["must be a JSON object"]},
        )
    return body


MAX_DEAL_ID = 64


def known_id(deal_id: str) -> str:
    """``deal_id`` if it could name a deal; a 404 that does not echo it back otherwise."""
    if len(deal_id) > MAX_DEAL_ID:
        raise DealNotFound("no such deal")
    return deal_id


def visible_deal(deal_id: str) -> Deal:
    """The deal as the caller may see it; 404 if they may not (no hint that it exists)."""
    principal = current_principal()
    deal = flow().store.get(known_id(deal_id))
    if deal is not None:
        if principal.role == "exporter" and deal.fields.get("exporter_uscc") == principal.subject:
            return deal
        if principal.role == "bank" and principal.subject in deal.offered_banks:
            return as_seen_by(deal, principal.subject)
    raise DealNotFound(f"no deal {deal_id} for you")


def bank_deal(deal_id: str, bank_id: str) -> tuple[Deal, list[dict]]:
    """The deal and its log as ``bank_id`` may see them (the officer desk reads deals this
    way too); DealNotFound if it was never offered to the bank (no hint that it exists)."""
    deal = flow().store.get(known_id(deal_id))
    if deal is None or bank_id not in deal.offered_banks:
        raise DealNotFound(f"no deal {deal_id} for you")
    return as_seen_by_bank(deal, flow().store.events(deal.id), bank_id)


def seen_by_bank(deals: list[Deal], bank_id: str) -> list[Deal]:
    """A page of a bank's index as the bank may see it: deals it passed on as they were."""
    passed_on = [d.id for d in deals if not holds(d, bank_id)]
    logs = dict(zip(passed_on, flow().store.events_many(passed_on), strict=True))
    return [as_seen_by(d, bank_id, logs.get(d.id)) for d in deals]


def as_seen_by(deal: Deal, bank_id: str, events: list[dict] | None = None) -> Deal:
    """A deal the bank no longer holds, as it was when the bank's offer ended."""
    if holds(deal, bank_id):
        return deal
    if events is None:
        events = flow().store.events(deal.id)
    return as_seen_by_bank(deal, events, bank_id)[0]


def view(deal: Deal) -> dict[str, Any]:
    principal = current_principal()
    return deal_view(deal, principal.role, principal.subject)


@api.post("/deals")
@require("exporter", guarded=True)
def submit_deal():
    body = json_body()
    application = _deal_request.load(body)
    principal = current_principal()
    if application.exporter_uscc != principal.subject:
        raise ApiError(
            403,
            "FORBIDDEN",
            "exporter_uscc is not the exporter of this token",
            {"exporter_uscc": ["must be the USCC your token was issued to"]},
        )
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (len(key) <= 128 and IDEMPOTENCY_KEY_RE.fullmatch(key)):
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "Idempotency-Key must be 1-128 printable ASCII characters",
            {"Idempotency-Key": ["must be 1-128 printable ASCII characters, not blank"]},
        )
    result = flow().submit(application, key, g.token_guard)
    if result.drain_due:
        publish_drain()
    headers = {"Location": url_for("api.get_deal", deal_id=result.deal.id)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(view(result.deal)), 202, headers


@api.get("/deals/<deal_id>")
@require("exporter", "bank")
def get_deal(deal_id: str):
    return jsonify(view(visible_deal(deal_id)))


@api.get("/deals/<deal_id>/events")
@require("exporter", "bank")
def get_events(deal_id: str):
    principal = current_principal()
    if principal.role == "bank":
        # One read of the log both cuts the deal at the bank's offer and gives the events.
        deal, events = bank_deal(deal_id, principal.subject)
    else:
        deal = visible_deal(deal_id)
        events = exporter_events(flow().store.events(deal.id))
    return jsonify({"deal_id": deal.id, "events": events})


@api.post("/deals/<deal_id>/decision")
@require("bank")
def decide(deal_id: str):
    body = _decision.load(json_body())
    bank_id = current_principal().subject
    officer = body.get("officer", "api")
    # The token speaks for the bank; a second approval must name one of its checkers.
    may_check = current_app.extensions["xinbao_users"].may_check(officer, bank_id)
    if body["decision"] == "send_back":
        deal = flow().return_approval(
            known_id(deal_id), bank_id, officer, may_check, body["reason"]
        )
        return jsonify(view(deal))
    decision = Decision(
        approve=body["decision"] == "approve",
        officer=officer,
        amount=body.get("amount"),
        annual_rate=body.get("annual_rate"),
        reason=body.get("reason"),
        may_check=may_check,
    )
    deal = flow().decide(known_id(deal_id), bank_id, decision)
    if deal.state == State.ROUTING:
        dispatch_route(deal.id)
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/withdraw")
@require("exporter")
def withdraw(deal_id: str):
    body = _withdraw.load(json_body()) if request.get_data() else {}
    deal = flow().withdraw(known_id(deal_id), current_principal().subject, body.get("reason"))
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/cancel")
@require("bank")
def cancel(deal_id: str):
    body = _cancel.load(json_body())
    deal = flow().cancel_approval(
        known_id(deal_id), current_principal().subject, body.get("officer", "api"), body["reason"]
    )
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/disbursement")
@require("bank")
def disburse(deal_id: str):
    body = _disbursement.load(json_body())
    payout = Disbursement(
        officer=body.get("officer", "api"),
        amount=body["amount"],
        value_date=body["value_date"],
        reference=body["reference"],
    )
    deal = flow().disburse(known_id(deal_id), current_principal().subject, payout)
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/disbursement/check")
@require("bank")
def check_disbursement(deal_id: str):
    """A checker confirms (or sends back) a disbursement entered at or above the bank's
    second-approval amount."""
    body = _disbursement_check.load(json_body())
    bank_id = current_principal().subject
    officer = body.get("officer", "api")
    may_check = current_app.extensions["xinbao_users"].may_check(officer, bank_id)
    if body["decision"] == "send_back":
        deal = flow().return_disbursement(
            known_id(deal_id), bank_id, officer, may_check, body["reason"], body["ref"]
        )
    else:
        deal = flow().confirm_disbursement(
            known_id(deal_id), bank_id, officer, may_check, body["ref"]
        )
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/deferrals")
@require("bank")
def defer(deal_id: str):
    body = _deferral.load(json_body())
    request_ = Deferral(
        officer=body.get("officer", "api"),
        new_due_date=body["new_due_date"],
        reference=body["reference"],
        note=body.get("note", ""),
    )
    deal = flow().defer(known_id(deal_id), current_principal().subject, request_)
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/repayments")
@require("bank")
def repay(deal_id: str):
    body = _repayment.load(json_body())
    payment = Repayment(
        officer=body.get("officer", "api"),
        amount=body["amount"],
        value_date=body["value_date"],
        reference=body["reference"],
    )
    deal = flow().repay(known_id(deal_id), current_principal().subject, payment)
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/notice")
@require("bank")
def file_notice(deal_id: str):
    body = _notice.load(json_body()) if request.get_data() else {}
    deal = flow().file_notice(
        known_id(deal_id), current_principal().subject, body.get("officer", "api")
    )
    return jsonify(view(deal))


@api.post("/deals/<deal_id>/claim")
@require("bank")
def file_claim(deal_id: str):
    body = _claim.load(json_body())
    deal = flow().file_claim(
        known_id(deal_id),
        current_principal().subject,
        body.get("officer", "api"),
        body["loss_amount"],
        body["documents"],
    )
    if deal.state == State.CLAIM_FILED:
        dispatch_settle_claim(deal.id)
    return jsonify(view(deal)), 202 if deal.state == State.CLAIM_FILED else 200


@api.post("/deals/<deal_id>/recoveries")
@require("bank")
def record_recovery(deal_id: str):
    body = _recovery.load(json_body())
    deal = flow().record_recovery(
        known_id(deal_id),
        current_principal().subject,
        body.get("officer", "api"),
        body["amount"],
        body["reference"],
    )
    return jsonify(view(deal))


@api.get("/portfolio")
@require("bank")
def portfolio():
    """The bank's portfolio figures, from counters the transitions keep (amounts as strings)."""
    workflow = flow()
    got = figures(workflow.store.redis, current_principal().subject, today=workflow.today())

    def wire(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: wire(v) for k, v in sorted(value.items())}
        return fmt(value) if isinstance(value, Decimal) else value

    return jsonify(wire(got))


@api.get("/deals")
@require("exporter", "bank")
def list_deals():
    query = _list_query.load(request.args.to_dict())
    principal = current_principal()
    page, per_page = query["page"], query["per_page"]
    if principal.role == "exporter":
        index, newest_first = keys.by_exporter(principal.subject), True
        if "state" in query:
            raise ApiError(
                422,
                "VALIDATION_FAILED",
                "exporters list all their deals",
                {"state": ["only banks filter by state"]},
            )
    elif query.get("state") == "pending_bank":
        # The bank's work queue: the most urgent deadline first.
        index, newest_first = keys.bank_queue(principal.subject), False
    else:
        index, newest_first = keys.by_bank(principal.subject), True
    store = flow().store
    total, deals = store.page(index, (page - 1) * per_page, per_page, newest_first)
    if principal.role == "bank":
        deals = seen_by_bank(deals, principal.subject)
    return jsonify(
        {"items": [view(d) for d in deals], "page": page, "per_page": per_page, "total": total}
    )


@api.get("/events")
@require("bank")
def bank_events():
    """The bank's event feed: every event of its deals it may see, oldest first, from a
    cursor (workflow/feed.py)."""
    try:
        query = _feed_query.load(request.args.to_dict())
    except ValidationError as exc:
        # A query string, not a body: 400, naming the parameter.
        fields = {k: [str(m) for m in v] for k, v in exc.normalized_messages().items()}
        raise ApiError(
            400, "BAD_QUERY", f"invalid query: {', '.join(sorted(fields))}", fields
        ) from None
    after = query.get("after")
    try:
        entries = read_bank_feed(
            flow().store.redis, current_principal().subject, after, query["limit"]
        )
    except FeedCursorExpired as exc:
        raise ApiError(
            410,
            "CURSOR_EXPIRED",
            f"events after {after} are no longer kept (retention "
            f"{flow().settings.feed_retention_days} days): you missed some; read your deals "
            "again (GET /api/v1/deals) and restart the feed without after=",
            {"after": [f"older than what the feed keeps (removed up to {exc.oldest_gone})"]},
        ) from None
    except FeedCursorAhead as exc:
        raise ApiError(
            400,
            "BAD_QUERY",
            "invalid query: after",
            {"after": [f"not a cursor of this feed: its newest event is {exc.newest or 'none'}"]},
        ) from None
    events = [
        {"cursor": e.cursor, "event_id": e.event_id, "deal_id": e.deal_id, **e.event}
        for e in entries
    ]
    return jsonify({"events": events, "next": entries[-1].cursor if entries else after})


@api.get("/openapi.json")
def openapi():
    from web.openapi import spec_dict

    return jsonify(spec_dict())
