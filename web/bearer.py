"""Bearer-token authentication of the API: each token speaks for one exporter or one bank."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request

from web.errors import ApiError
from workflow.logs import bind
from workflow.reference import Principal

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="xinbao"'}


def current_principal() -> Principal:
    return g.principal


def require(*roles: str) -> Callable:
    """Decorator: the request must carry a valid bearer token of one of ``roles``."""

    def wrap(view: Callable) -> Callable:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(
                    401, "UNAUTHENTICATED", "send Authorization: Bearer <token>", headers=CHALLENGE
                )
            principal = current_app.extensions["xinbao"].reference.principal(token.strip())
            if principal is None:
                raise ApiError(
                    401, "UNAUTHENTICATED", "unknown or revoked token", headers=CHALLENGE
                )
            if principal.role not in roles:
                raise ApiError(403, "FORBIDDEN", f"this needs a {' or '.join(roles)} token")
            g.principal = principal
            bind(**{"bank_id" if principal.role == "bank" else "exporter": principal.subject})
            return view(*args, **kwargs)

        return inner

    return wrap
