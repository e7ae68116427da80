"""Xinbao's Flask application: the JSON API, the signed-in pages for officers and exporters,
and the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from tasks.celery_app import celery_config, celery_init_app
from web.health import health_client
from workflow.insurer_http import build_insurer
from workflow.logs import configure_logging
from workflow.metrics import observe_transition
from workflow.pipeline import Workflow
from workflow.redis_client import connect
from workflow.reference import ReferenceRepository
from workflow.settings import Settings, SettingsError, load_settings
from workflow.store import DealStore
from workflow.users import Users

# The SECRET_KEY used when none is set: it signs session cookies, so production refuses it.
DEV_SECRET_KEY = "dev-only-not-secret"


def build_workflow(client: Any, settings: Settings) -> Workflow:
    reference = ReferenceRepository(client)
    store = DealStore(
        client,
        observers=(observe_transition,),
        feed_retention_days=settings.feed_retention_days,
    )
    return Workflow(store, reference, build_insurer(settings, reference), settings)


def create_app(
    settings: Settings | None = None, *, redis_client: Any = None, celery: dict | None = None
) -> Flask:
    """Build the app; tests pass their own settings, Redis client and Celery overrides."""
    configure_logging()
    settings = settings or load_settings()
    weak_key = settings.secret_key == DEV_SECRET_KEY or len(settings.secret_key) < 32
    if settings.production and weak_key:
        # Anyone knowing the key could forge a signed-in officer's session cookie.
        raise SettingsError("SECRET_KEY: set a random value of 32+ characters in production")
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        # A deal with 50 invoices is a few KB; refuse anything far larger outright (413).
        MAX_CONTENT_LENGTH=256 * 1024,
        CELERY={**celery_config(settings), **(celery or {})},
        # Page sessions: out of reach of scripts, not sent on cross-site posts, only over
        # TLS in production; they end after this long without a request (each one renews it,
        # and Flask refuses a cookie signed longer ago than that).
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_idle_seconds),
        SESSION_REFRESH_EACH_REQUEST=True,
        # No "remember me": a session never outlives the idle limit.
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.production,
        # The CSRF token lives as long as the session holding it.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.from_prefixed_env("XINBAO_FLASK")
    # REDIS_URL, or the primary REDIS_SENTINELS name (workflow/redis_client.py).
    client = redis_client or connect(settings)
    app.extensions["redis"] = client
    app.extensions["health_redis"] = redis_client or health_client(settings)
    app.extensions["xinbao"] = build_workflow(client, settings)
    app.extensions["xinbao_settings"] = settings
    app.extensions["xinbao_users"] = Users(
        client,
        lockout_seconds=settings.lockout_seconds,
        session_idle_seconds=settings.session_idle_seconds,
    )
    celery_init_app(app)
    register_request_ids(app)
    register_extensions(app)
    register_blueprints(app)
    register_security_headers(app)
    register_cli(app)
    from web import formatting

    formatting.init_app(app)
    return app


def register_request_ids(app: Flask) -> None:
    from web.request_ids import init_app

    init_app(app)


def register_extensions(app: Flask) -> None:
    from web import i18n
    from web.extensions import csrf, login_manager

    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    i18n.init_app(app)


def register_blueprints(app: Flask) -> None:
    from web.api import api
    from web.auth import auth
    from web.desk import desk
    from web.errors import register_error_handlers
    from web.extensions import csrf
    from web.health import health
    from web.insurer_callbacks import insurer_callbacks
    from web.metrics import metrics
    from web.portal import portal

    # The JSON API authenticates each request by bearer token, never by cookie, so a
    # cross-site form cannot act for anyone there: no CSRF token is needed (or sent).
    csrf.exempt(api)
    csrf.exempt(health)
    csrf.exempt(metrics)
    csrf.exempt(insurer_callbacks)  # signed by the insurer (HMAC), never sent by a browser
    app.register_blueprint(api)
    app.register_blueprint(insurer_callbacks)
    app.register_blueprint(health)
    app.register_blueprint(metrics)
    app.register_blueprint(auth)
    app.register_blueprint(desk)
    app.register_blueprint(portal)
    register_error_handlers(app)


def register_security_headers(app: Flask) -> None:
    from web.headers import register_security_headers as register

    register(app)


def register_cli(app: Flask) -> None:
    from web.cli import load_command

    app.cli.add_command(load_command)
