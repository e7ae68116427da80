"""Xinbao's Flask application: the JSON API for exporters and banks, and the CLI."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from tasks.celery_app import celery_config, celery_init_app
from workflow.gateway import ReferenceDataInsurer
from workflow.logs import configure_logging
from workflow.pipeline import Workflow
from workflow.reference import ReferenceRepository
from workflow.settings import Settings, load_settings
from workflow.store import DealStore


def build_workflow(client: Any, settings: Settings) -> Workflow:
    reference = ReferenceRepository(client)
    return Workflow(DealStore(client), reference, ReferenceDataInsurer(reference), settings)


def create_app(
    settings: Settings | None = None, *, redis_client: Any = None, celery: dict | None = None
) -> Flask:
    """Build the app; tests pass their own settings, Redis client and Celery overrides."""
    configure_logging()
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        # A deal with 50 invoices is a few KB; refuse anything far larger outright (413).
        MAX_CONTENT_LENGTH=256 * 1024,
        CELERY={**celery_config(settings), **(celery or {})},
    )
    app.config.from_prefixed_env("XINBAO_FLASK")
    client = redis_client or redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=2,
        socket_timeout=10,
        # A short retry: while Redis is down a request gets its 503 within about a second
        # instead of holding a web worker for several.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
    )
    app.extensions["redis"] = client
    app.extensions["xinbao"] = build_workflow(client, settings)
    app.extensions["xinbao_settings"] = settings
    celery_init_app(app)
    register_blueprints(app)
    register_cli(app)
    return app


def register_blueprints(app: Flask) -> None:
    from web.api import api
    from web.errors import register_error_handlers
    from web.health import health

    app.register_blueprint(api)
    app.register_blueprint(health)
    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from web.cli import load_command

    app.cli.add_command(load_command)
