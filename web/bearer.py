"""Bearer-token authentication of the API: each token speaks for one exporter or one bank."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request

from web.errors import ApiError
from workflow.logs import bind
from workflow.reference import Principal
from workflow.store import ExpectationFailed

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="xinbao"'}
# How often a guarded view runs while its token's record keeps changing (a revocation ends
# it at the second run: 401).
GUARDED_RUNS = 3


def current_principal() -> Principal:
    return g.principal


def require(*roles: str, guarded: bool = False) -> Callable:
    """Decorator: the request must carry a valid bearer token of one of ``roles``.

    ``guarded``: the view commits its one write with ``Ops.expect(*g.token_guard)`` (a
    submission). The token is then taken from this process's cache without a round trip,
    and that write checks it atomically: a token revoked or re-issued since is refused there,
    and the request runs again on the token's record as it now is (401 if it is gone). An
    error answer of the view is given only after the token was read again and found the same."""

    def wrap(view: Callable) -> Callable:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            token = _presented_token()
            reference = current_app.extensions["xinbao"].reference
            if not guarded:
                _admit(reference.principal(token), roles)
                return view(*args, **kwargs)
            principal, guard = reference.principals.principal(token)
            if principal is not None and principal.role not in roles:
                # A 403 is an answer no write checks: give it only as the token reads now
                # (401 if it was revoked since it was cached), read past the cache, where
                # another thread may have just put back a record read before a revocation.
                reference.principals.forget(guard[0])
                _admit(reference.principal(token), roles)
                principal, guard = reference.principals.principal(token)
            for _ in range(GUARDED_RUNS):
                _admit(principal, roles)
                g.token_guard = guard
                try:
                    return view(*args, **kwargs)
                except ExpectationFailed as exc:
                    if exc.key != guard[0]:
                        raise
                except Exception:
                    # Not the write's answer: the cached record was not checked by it. The
                    # answer stands only if the token, read past the cache (see above), still
                    # speaks for the same principal.
                    if reference.principal(token) == principal:
                        raise
                # The write refused the record (nothing written), or the token changed before
                # an error answer: run again as the token now reads (401 if it is gone),
                # guarded by that fresh record, so a revocation committing after this read
                # still refuses the write.
                reference.principals.forget(guard[0])
                principal, guard = reference.principals.principal(token)
            # Every run was refused: the record keeps changing, or another thread keeps
            # caching one read before a revocation. Read it past the cache: 401 if it is gone.
            _admit(reference.principal(token), roles)
            raise ApiError(
                503,
                "SERVICE_UNAVAILABLE",
                "the token changed while the request ran; try again shortly",
                headers={"Retry-After": "2"},
            )

        return inner

    return wrap


def _presented_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "UNAUTHENTICATED", "send Authorization: Bearer <token>", headers=CHALLENGE
        )
    return token.strip()


def _admit(principal: Principal | None, roles: tuple[str, ...]) -> None:
    """Let the request on as ``principal``, or answer 401 (no such token) or 403 (a role not
    in ``roles``)."""
    if principal is None:
        raise ApiError(401, "UNAUTHENTICATED", "unknown or revoked token", headers=CHALLENGE)
    if principal.role not in roles:
        raise ApiError(403, "FORBIDDEN", f"this needs a {' or '.join(roles)} token")
    g.principal = principal
    bind(**{"bank_id" if principal.role == "bank" else "exporter": principal.subject})
