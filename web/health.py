"""Liveness and readiness for load balancers and docker-compose health checks."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    try:
        current_app.extensions["redis"].ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return jsonify({"status": "unavailable", "redis": str(exc)}), 503
    return jsonify({"status": "ok", "redis": "ok"})
