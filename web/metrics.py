"""GET /metrics for Prometheus: every process's event metrics and the state read from Redis,
for operators only (a bearer token; open in development while none is set)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workflow.metrics import scrape_registry

metrics = Blueprint("metrics", __name__)


def _refusal() -> tuple[Response, int, dict[str, str]] | None:
    """Why this request may not read the metrics, as the answer to give; None if it may."""
    settings = current_app.extensions["xinbao_settings"]
    token = settings.metrics_token
    if not token:
        if settings.production:
            body = {"error": "METRICS_DISABLED", "message": "set XINBAO_METRICS_TOKEN"}
            return jsonify(body), 403, {}
        return None
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode()):
        return None
    body = {"error": "UNAUTHENTICATED", "message": "send Authorization: Bearer <metrics token>"}
    return jsonify(body), 401, {"WWW-Authenticate": 'Bearer realm="xinbao-metrics"'}


@metrics.get("/metrics")
def scrape():
    refused = _refusal()
    if refused is not None:
        return refused
    registry = scrape_registry(current_app.extensions["redis"])
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
