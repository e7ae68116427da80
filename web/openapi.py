"""The OpenAPI 3 document of /api/v1, generated from the marshmallow schemas with apispec."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from web.api import IDEMPOTENCY_KEY_RE
from web.schemas import (
    CancelSchema,
    ClaimSchema,
    DealPageSchema,
    DealRequestSchema,
    DealSchema,
    DecisionSchema,
    DeferralSchema,
    DisbursementCheckSchema,
    DisbursementSchema,
    ErrorSchema,
    EventListSchema,
    FeedPageSchema,
    NoticeSchema,
    RecoverySchema,
    RepaymentSchema,
    WithdrawSchema,
)
from workflow.feed import MAX_LIMIT as FEED_MAX_LIMIT

JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": "Error"}}}


def _ok(description: str, schema: str, headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


_DEAL_ID = {
    "name": "deal_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 64},
}
_COMMON = {
    "401": _error("Missing or unknown bearer token"),
    "403": _error("The token may not do this"),
    "503": _error("The deal store is unavailable; retry (with the same Idempotency-Key)"),
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": f"^{IDEMPOTENCY_KEY_RE.pattern}$",
    },
}
_LIST_PARAMS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    {
        "name": "state",
        "in": "query",
        "schema": {"type": "string", "enum": ["pending_bank"]},
        "description": "Banks: only the deals awaiting your decision, most urgent first",
    },
]

_FEED_PARAMS = [
    {
        "name": "after",
        "in": "query",
        "schema": {"type": "string", "pattern": r"^\d{1,20}(-\d{1,20})?$"},
        "description": "A cursor from an earlier answer; none: from the oldest event kept",
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": FEED_MAX_LIMIT, "default": 100},
    },
]


def _operation(
    summary: str,
    status: str,
    ok: dict[str, Any],
    *,
    params: list[dict] | tuple = (),
    body: str | None = None,
    body_required: bool = True,
    errors: dict[str, str],
) -> dict[str, Any]:
    """One bearer-secured operation with the error responses every call can give."""
    responses = {status: ok, **_COMMON, **{code: _error(text) for code, text in errors.items()}}
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": list(params),
        "responses": responses,
    }
    if body:
        operation["requestBody"] = {"required": body_required, "content": {JSON: {"schema": body}}}
        responses.update(
            {
                "400": _error("Malformed JSON"),
                "413": _error("Body too large"),
                "415": _error("Not a JSON body"),
            }
        )
    return dict(operation, responses=dict(sorted(responses.items())))


def _money_field(plugin: MarshmallowPlugin, field: Any, **_: Any) -> dict[str, Any]:
    from web.schemas import RATE_RE, Money, Rate
    from workflow.money import AMOUNT_RE

    if isinstance(field, Money):
        return {
            "type": "string",
            "pattern": f"^{AMOUNT_RE.pattern}$",
            "example": "125000.00",
        }
    if isinstance(field, Rate):
        return {
            "type": "string",
            "pattern": f"^({RATE_RE.pattern})$",
            "example": "0.0450",
        }
    return {}


@lru_cache(maxsize=1)
def spec_dict() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Xinbao API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[plugin],
        info={
            "description": "Financing of export receivables insured by a short-term export "
            "credit insurance policy. Money is a decimal string; dates ISO 8601; "
            "times UTC."
        },
        servers=[{"url": "/"}],
    )
    plugin.converter.add_attribute_function(_money_field)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in (
        ("Error", ErrorSchema),
        ("DealRequest", DealRequestSchema),
        ("Deal", DealSchema),
        ("DealPage", DealPageSchema),
        ("Decision", DecisionSchema),
        ("Withdraw", WithdrawSchema),
        ("Cancel", CancelSchema),
        ("Disbursement", DisbursementSchema),
        ("DisbursementCheck", DisbursementCheckSchema),
        ("Deferral", DeferralSchema),
        ("Repayment", RepaymentSchema),
        ("Notice", NoticeSchema),
        ("Claim", ClaimSchema),
        ("Recovery", RecoverySchema),
        ("EventList", EventListSchema),
        ("FeedPage", FeedPageSchema),
    ):
        spec.components.schema(name, schema=schema)
    deals, one = "/api/v1/deals", "/api/v1/deals/{deal_id}"
    spec.path(
        path=deals,
        operations={
            "post": _operation(
                "Submit an application for financing (exporter token)",
                "202",
                _ok(
                    "Accepted; verification runs in the background",
                    "Deal",
                    {"Location": {"schema": {"type": "string"}}},
                ),
                params=[_IDEMPOTENCY_KEY],
                body="DealRequest",
                errors={
                    "409": "DUPLICATE_RECEIVABLE or IDEMPOTENCY_KEY_REUSED",
                    "422": "Invalid fields, each named in error.fields",
                },
            ),
            "get": _operation(
                "List your deals (exporter) or the deals offered to you (bank)",
                "200",
                _ok("One page", "DealPage"),
                params=_LIST_PARAMS,
                errors={"422": "Invalid query"},
            ),
        },
    )
    spec.path(
        path=one,
        operations={
            "get": _operation(
                "A deal: state, amounts, check results, bank and deadline",
                "200",
                _ok("The deal", "Deal"),
                params=[_DEAL_ID],
                errors={"404": "No such deal for you"},
            )
        },
    )
    spec.path(
        path=f"{one}/events",
        operations={
            "get": _operation(
                "The deal's ordered event log",
                "200",
                _ok("Events, oldest first", "EventList"),
                params=[_DEAL_ID],
                errors={"404": "No such deal for you"},
            )
        },
    )
    spec.path(
        path="/api/v1/events",
        operations={
            "get": _operation(
                "Your bank's event feed: every event of your deals you may see (as in "
                "/deals/{deal_id}/events), oldest first, resumable from a cursor (bank token)",
                "200",
                _ok("Events after the cursor and the cursor to ask with next", "FeedPage"),
                params=_FEED_PARAMS,
                errors={
                    "400": "A malformed cursor or limit, named in error.fields",
                    "410": "CURSOR_EXPIRED: events after the cursor were removed by retention "
                    "(XINBAO_FEED_RETENTION_DAYS); reconcile and restart without after=",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/decision",
        operations={
            "post": _operation(
                "Approve or decline a deal pending your bank's decision (bank token)",
                "200",
                _ok("The deal after the decision", "Deal"),
                params=[_DEAL_ID],
                body="Decision",
                errors={
                    "404": "No such deal routed to your bank",
                    "409": "The deal is not pending your decision, or its deadline passed",
                    "422": "Invalid fields",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/withdraw",
        operations={
            "post": _operation(
                "Withdraw an application before a bank approves it (exporter token)",
                "200",
                _ok("The withdrawn deal", "Deal"),
                params=[_DEAL_ID],
                body="Withdraw",
                body_required=False,
                errors={
                    "404": "No such deal for you",
                    "409": "Too late to withdraw: ALREADY_APPROVED once a bank has approved "
                    "(only that bank can cancel), INVALID_STATE once the deal has ended",
                    "422": "Invalid fields",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/cancel",
        operations={
            "post": _operation(
                "Cancel your bank's approval before disbursement (bank token); releases the "
                "buyer-limit reservation and the invoices",
                "200",
                _ok("The cancelled deal", "Deal"),
                params=[_DEAL_ID],
                body="Cancel",
                errors={
                    "404": "No such deal routed to your bank",
                    "409": "The deal is not approved by your bank",
                    "422": "Invalid fields",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/disbursement",
        operations={
            "post": _operation(
                "Record the advance your bank paid out on a deal it approved (bank token): "
                "the buyer-limit reservation becomes the principal used, the rest is released",
                "200",
                _ok("The disbursed deal, with its loan terms", "Deal"),
                params=[_DEAL_ID],
                body="Disbursement",
                errors={
                    "404": "No such deal routed to your bank",
                    "409": "Not approved by your bank, or already disbursed under another "
                    "reference (the same reference and amount again returns the deal)",
                    "422": "Invalid fields: amount above the approved amount, value date "
                    "before the approval, in the future or not before the due date",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/disbursement/check",
        operations={
            "post": _operation(
                "Confirm or send back a disbursement another officer of your bank entered at "
                "or above its second-approval amount (bank token; the officer named must hold "
                "the checker role and differ from the maker)",
                "200",
                _ok("The disbursed deal, or the approved deal without the entry", "Deal"),
                params=[_DEAL_ID],
                body="DisbursementCheck",
                errors={
                    "403": "SAME_OFFICER or CHECKER_ROLE_REQUIRED",
                    "404": "No such deal routed to your bank",
                    "409": "No such entry awaits a check (sent back, or another one now)",
                    "422": "Invalid fields",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/deferrals",
        operations={
            "post": _operation(
                "Defer a disbursed advance's due date (延期还本付息, bank token): the insurer "
                "is asked to let its cover follow; granted, the advance is current until the "
                "new date",
                "200",
                _ok("The deal with its new due date and the deferral recorded", "Deal"),
                params=[_DEAL_ID],
                body="Deferral",
                errors={
                    "404": "No such deal routed to your bank",
                    "409": "Not disbursed or already claimed, or the reference was used for "
                    "another date",
                    "422": "DEFERRAL_REFUSED by the insurer (its reasons under "
                    "error.fields.new_due_date, recorded on the deal), or invalid fields",
                    "503": "INSURER_UNAVAILABLE: nothing was changed; try again",
                },
            )
        },
    )
    spec.path(
        path=f"{one}/repayments",
        operations={
            "post": _operation(
                "Record money received on the advance (bank token), by value date: accrued "
                "interest first, then principal; the deal is repaid once both are settled",
                "200",
                _ok("The deal after the repayment", "Deal"),
                params=[_DEAL_ID],
                body="Repayment",
                errors={
                    "404": "No such deal routed to your bank",
                    "409": "Not disbursed, or the reference was recorded with another amount "
                    "(the same reference and amount again returns the deal)",
                    "422": "Invalid fields: more than is owed on the value date, or a value "
                    "date before the last one or in the future",
                },
            )
        },
    )
    spec.path(
        path="/api/v1/portfolio",
        operations={
            "get": _operation(
                "Your bank's portfolio (bank token): outstanding principal by currency, buyer "
                "and country, overdue and by arrears bucket, deferred advances, claims pending "
                "(and the loss claimed), paid and rejected, indemnity received, borrowers now "
                "and first-time borrowers, from counters and indexes every transition keeps",
                "200",
                {"description": "The figures; amounts are decimal strings"},
                errors={},
            )
        },
    )
    for path, summary, ok, body, status, conflict in (
        (
            "notice",
            "Send the insurer the notice of possible loss on an overdue advance (bank token)",
            "The deal with the notice recorded (a repeat returns it as it is)",
            "Notice",
            "200",
            "The deal is not overdue",
        ),
        (
            "claim",
            "Claim the loss under the assigned indemnity (bank token); the insurer's decision "
            "moves the deal to indemnified or claim_rejected",
            "The claim is filed; the insurer's decision follows",
            "Claim",
            "202",
            "No notice of possible loss yet, or the deal is not overdue",
        ),
        (
            "recoveries",
            "Record money recovered after the indemnity (bank token), shared between insurer "
            "and bank in proportion to the loss each bore",
            "The deal with the recovery and its shares",
            "Recovery",
            "200",
            "The deal was not indemnified",
        ),
    ):
        spec.path(
            path=f"{one}/{path}",
            operations={
                "post": _operation(
                    summary,
                    status,
                    _ok(ok, "Deal"),
                    params=[_DEAL_ID],
                    body=body,
                    body_required=path != "notice",
                    errors={
                        "404": "No such deal routed to your bank",
                        "409": conflict,
                        "422": "Invalid fields",
                    },
                )
            },
        )
    return spec.to_dict()
