"""The insurer's webhook: POST /api/v1/insurer/callbacks, signed by the insurer, no bearer."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from tasks.pipeline import dispatch_settle_claim
from web.errors import error_response
from workflow.callback_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from workflow.insurer_callbacks import CallbackRefused, take_callback

insurer_callbacks = Blueprint("insurer_callbacks", __name__, url_prefix="/api/v1/insurer")
# An insurer's callback is a few hundred bytes; anything far larger is not one.
MAX_BODY = 64 * 1024


@insurer_callbacks.post("/callbacks")
def callback() -> Any:
    """Take a callback once: 200 whether it was new, a duplicate, late or about a deal that
    moved on (the insurer must not retry those); 401 for a forged or stale signature."""
    workflow = current_app.extensions["xinbao"]
    if (request.content_length or 0) > MAX_BODY:
        return error_response(413, "TOO_LARGE", "a callback is at most 64 KiB")
    # Read one byte past the limit, whatever the headers said: a chunked body has no length.
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return error_response(413, "TOO_LARGE", "a callback is at most 64 KiB")
    try:
        outcome = take_callback(
            workflow.store,
            workflow.settings.insurer_callback_secret,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=time.time(),
        )
    except CallbackRefused as refused:
        return error_response(refused.status, refused.code, str(refused))
    if outcome.settle_claim:
        dispatch_settle_claim(outcome.settle_claim)
    return jsonify({"accepted": True, "duplicate": outcome.duplicate})
