"""Errors: one JSON shape for the API, {"error": {"code", "message", "fields"}}, and error
pages in the page style for everything else."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import AnonymousUserMixin
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from workflow.gateway import InsurerUnavailable
from workflow.identifiers import printable
from workflow.pipeline import (
    DealNotFound,
    DeferralRefused,
    DuplicateReceivable,
    IdempotencyKeyReused,
    InvalidDecision,
    MakerCheckerRefused,
    WorkflowError,
    WrongState,
)
from workflow.reasons import describe

log = logging.getLogger("xinbao.web")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    headers: dict | None = None,
):
    # Messages and field names may echo what the client sent (an unknown key, a deal id):
    # escape anything that is not clean text so no encoder or reader downstream chokes on it.
    safe_fields = {
        printable(name): [printable(m) for m in msgs] for name, msgs in (fields or {}).items()
    }
    body = {"error": {"code": code, "message": printable(message), "fields": safe_fields}}
    return jsonify(body), status, headers or {}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict as {"invoices[0].amount": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, sub in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "_body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for name, msgs in flatten_messages(sub, path).items():
                out.setdefault(name, []).extend(msgs)
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, str):
                out.setdefault(prefix or "_body", []).append(item)
            else:
                for name, msgs in flatten_messages(item, prefix).items():
                    out.setdefault(name, []).extend(msgs)
    else:
        out.setdefault(prefix or "_body", []).append(str(messages))
    return out


# Paths answered in JSON; every other path is a page and gets an error page.
_JSON_PREFIXES = ("/api/",)
_JSON_PATHS = frozenset({"/healthz"})

_PAGE_TEXT = {
    400: (_l("Bad request"), _l("The request could not be understood.")),
    403: (_l("Not allowed"), _l("Your account cannot open this page.")),
    404: (_l("Page not found"), _l("There is no page at this address.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"), _l("What was sent is too large.")),
    500: (_l("Something went wrong"), _l("An internal error happened; it has been logged.")),
    503: (_l("Unavailable"), _l("The service is unavailable for a moment; try again shortly.")),
}


def wants_page() -> bool:
    """Whether the failing request is for a page (HTML) rather than the JSON API."""
    path = request.path
    return not (path.startswith(_JSON_PREFIXES) or path in _JSON_PATHS)


def error_page(status: int, message: str | None = None, headers: dict | None = None):
    title, default = _PAGE_TEXT.get(status, (_l("Error"), _l("The request failed.")))
    if status == 503 and "_login_user" not in g:
        # The store is down, so the signed-in user cannot be loaded: the page header shows
        # no one rather than failing again while it renders.
        g._login_user = AnonymousUserMixin()
    body = render_template(
        "errors/page.html",
        status=status,
        title=title,
        message=message or default,
        # Switching language here leads to the start page: an error page echoes nothing of
        # the address asked for, and is no page to come back to.
        language_next=lambda: "",
    )
    return body, status, headers or {}


_WORKFLOW_STATUS: list[tuple[type[WorkflowError], int]] = [
    (DealNotFound, 404),
    (DuplicateReceivable, 409),
    (IdempotencyKeyReused, 409),
    (WrongState, 409),
    (InvalidDecision, 422),
    (DeferralRefused, 422),
    (MakerCheckerRefused, 403),
]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        fields = flatten_messages(exc.messages)
        named = ", ".join(sorted(fields))
        return error_response(422, "VALIDATION_FAILED", f"invalid fields: {named}", fields)

    @app.errorhandler(WorkflowError)
    def _workflow(exc: WorkflowError):
        status = next((s for cls, s in _WORKFLOW_STATUS if isinstance(exc, cls)), 409)
        fields: dict[str, list[str]] = {}
        if isinstance(exc, InvalidDecision):
            fields = {exc.field: [str(exc)]}
        elif isinstance(exc, DuplicateReceivable):
            fields = {"invoices": [str(exc)]}
        elif isinstance(exc, DeferralRefused):
            fields = {"new_due_date": [f"{code}: {describe(code)}" for code in exc.reasons]}
        return error_response(status, exc.code, str(exc), fields)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        log.warning("form refused: %s", exc.description)
        if not wants_page():
            return error_response(400, "CSRF_FAILED", exc.description or "CSRF check failed")
        return error_page(
            400,
            _(
                "This form has expired or did not come from this site. Go back, reload the"
                " page and try again."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").upper().replace(" ", "_")
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        if wants_page():
            return error_page(exc.code or 500, None, headers)
        return error_response(exc.code or 500, code, exc.description or exc.name, None, headers)

    @app.errorhandler(InsurerUnavailable)
    def _insurer_unavailable(exc: Exception):
        log.warning("insurer unavailable: %s", exc)
        return error_response(
            503,
            "INSURER_UNAVAILABLE",
            "the insurer cannot be asked right now; nothing was changed, try again shortly",
            None,
            {"Retry-After": "30"},
        )

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _store_unavailable(exc: Exception):
        # The write may or may not have happened (the reply can be lost after the commit):
        # a retry with the same Idempotency-Key gets exactly one deal either way.
        log.warning("store unavailable: %s", exc)
        if wants_page():
            return error_page(503, None, {"Retry-After": "2"})
        return error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "the deal store is unavailable and the outcome unknown; retry with the same "
            "Idempotency-Key to get exactly one deal",
            None,
            {"Retry-After": "2"},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        if wants_page():
            return error_page(500)
        return error_response(500, "INTERNAL_ERROR", "internal error; it has been logged")
