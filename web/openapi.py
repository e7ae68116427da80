"""The OpenAPI 3 document of /api/v1, generated from the marshmallow schemas with apispec."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from web.schemas import (
    DealPageSchema,
    DealRequestSchema,
    DealSchema,
    DecisionSchema,
    ErrorSchema,
    EventListSchema,
    WithdrawSchema,
)

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
}


def _money_field(plugin: MarshmallowPlugin, field: Any, **_: Any) -> dict[str, Any]:
    from web.schemas import Money, Rate

    if isinstance(field, Money):
        return {
            "type": "string",
            "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$",
            "example": "125000.00",
        }
    if isinstance(field, Rate):
        return {
            "type": "string",
            "pattern": r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$",
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
        ("EventList", EventListSchema),
    ):
        spec.components.schema(name, schema=schema)
    secured = [{"bearer": []}]
    spec.path(
        path="/api/v1/deals",
        operations={
            "post": {
                "summary": "Submit an application for financing (exporter token)",
                "security": secured,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    }
                ],
                "requestBody": {"required": True, "content": {JSON: {"schema": "DealRequest"}}},
                "responses": {
                    "202": _ok(
                        "Accepted; verification runs in the background",
                        "Deal",
                        {"Location": {"schema": {"type": "string"}}},
                    ),
                    "400": _error("Malformed JSON"),
                    **_COMMON,
                    "409": _error("DUPLICATE_RECEIVABLE or IDEMPOTENCY_KEY_REUSED"),
                    "415": _error("Not a JSON body"),
                    "422": _error("Invalid fields, each named in error.fields"),
                },
            },
            "get": {
                "summary": "List your deals (exporter) or the deals offered to you (bank)",
                "security": secured,
                "parameters": [
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                    },
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["pending_bank"]},
                        "description": "Banks: only the deals awaiting your decision, most urgent "
                        "first",
                    },
                ],
                "responses": {
                    "200": _ok("One page", "DealPage"),
                    **_COMMON,
                    "422": _error("Invalid query"),
                },
            },
        },
    )
    spec.path(
        path="/api/v1/deals/{deal_id}",
        operations={
            "get": {
                "summary": "A deal: state, amounts, check results, bank and deadline",
                "security": secured,
                "parameters": [_DEAL_ID],
                "responses": {
                    "200": _ok("The deal", "Deal"),
                    **_COMMON,
                    "404": _error("No such deal for you"),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/deals/{deal_id}/events",
        operations={
            "get": {
                "summary": "The deal's ordered event log",
                "security": secured,
                "parameters": [_DEAL_ID],
                "responses": {
                    "200": _ok("Events, oldest first", "EventList"),
                    **_COMMON,
                    "404": _error("No such deal for you"),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/deals/{deal_id}/decision",
        operations={
            "post": {
                "summary": "Approve or decline a deal pending your bank's decision (bank token)",
                "security": secured,
                "parameters": [_DEAL_ID],
                "requestBody": {"required": True, "content": {JSON: {"schema": "Decision"}}},
                "responses": {
                    "200": _ok("The deal after the decision", "Deal"),
                    "400": _error("Malformed JSON"),
                    **_COMMON,
                    "404": _error("No such deal routed to your bank"),
                    "409": _error("The deal is not pending your decision"),
                    "415": _error("Not a JSON body"),
                    "422": _error("Invalid fields"),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/deals/{deal_id}/withdraw",
        operations={
            "post": {
                "summary": "Withdraw an application before disbursement (exporter token)",
                "security": secured,
                "parameters": [_DEAL_ID],
                "requestBody": {"required": False, "content": {JSON: {"schema": "Withdraw"}}},
                "responses": {
                    "200": _ok("The withdrawn deal", "Deal"),
                    "400": _error("Malformed JSON"),
                    **_COMMON,
                    "404": _error("No such deal for you"),
                    "409": _error("Too late to withdraw"),
                    "415": _error("Not a JSON body"),
                    "422": _error("Invalid fields"),
                },
            }
        },
    )
    return spec.to_dict()
