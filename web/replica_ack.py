"""XINBAO_REQUIRE_REPLICA_ACK: an API write answers 2xx only once a replica holds it."""

from __future__ import annotations

import logging

from flask import Response, current_app, request

from web.errors import error_response
from workflow.replication import await_replicas

log = logging.getLogger("xinbao.web")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# How soon a client should retry: about one Sentinel failover (down-after plus election).
RETRY_AFTER_SECONDS = "2"


def require_replica_ack(response: Response) -> Response:
    """After a successful API write, WAIT for one replica (after_request of the API).

    A replica that did not acknowledge in time makes the answer 503 REPLICA_ACK_TIMEOUT with
    Retry-After. The write itself was applied on the primary and is not undone: a retry of a
    submission with the same Idempotency-Key returns the same deal (or makes it anew if a
    failover lost it); before retrying any other write, read the deal back."""
    settings = current_app.extensions["xinbao_settings"]
    if not settings.require_replica_ack or request.method not in WRITES:
        return response
    if not 200 <= response.status_code < 300:
        return response
    body = response.get_json(silent=True) if response.is_json else None
    deal_id = version = None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        deal_id = body["id"]
        version = body.get("version") if isinstance(body.get("version"), int) else None
    try:
        ack = await_replicas(
            current_app.extensions["redis"], 1, settings.replica_ack_timeout_ms, deal_id, version
        )
    except Exception:  # noqa: BLE001 - the primary went away between the write and the WAIT
        log.warning("replica acknowledgement not obtained", exc_info=True)
        ack = None
    if ack is not None and ack.ok(1):
        return response
    log.warning(
        "write not acknowledged by a replica",
        extra={"deal_id": deal_id, "replicas": ack.replicas if ack else None},
    )
    body, status, headers = error_response(
        503,
        "REPLICA_ACK_TIMEOUT",
        "the write was taken but no replica confirmed it in time; it may be lost if the"
        " primary fails now. Retry a submission with the same Idempotency-Key; read the deal"
        " before retrying anything else",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
    body.status_code = status
    body.headers.update(headers)
    return body
