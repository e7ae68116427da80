"""Who a page request is: the signed-in user, role checks, fresh logins and safe redirects."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import UserMixin, current_user

from web.extensions import login_manager
from workflow.logs import bind
from workflow.users import EXPORTER, OFFICER, User, Users

# When the password was last entered (epoch seconds), for actions that need a fresh login.
AUTH_AT = "auth_at"


class SessionUser(UserMixin):
    """Flask-Login's view of a stored user; its id carries the session generation, so
    disabling the user or changing the password ends its sessions."""

    def __init__(self, user: User, session_id: str):
        self.user = user
        self.session_id = session_id

    def get_id(self) -> str:
        return self.session_id

    @property
    def is_active(self) -> bool:
        return not self.user.disabled

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role


def user_store() -> Users:
    return current_app.extensions["xinbao_users"]


@login_manager.user_loader
def _load_user(session_id: str) -> SessionUser | None:
    # Read on every request: a disabled or deleted user is signed out at once, and so is one
    # whose bank or exporter a reference reload has removed.
    user = user_store().by_session_id(session_id)
    if user is None or not subject_exists(user):
        return None
    bind(bank_id=user.bank_id or None, exporter=user.exporter_uscc or None)
    return SessionUser(user, session_id)


def subject_exists(user: User) -> bool:
    """Whether the bank or exporter the user acts for is still in the reference data."""
    reference = current_app.extensions["xinbao"].reference
    if user.bank_id:
        return reference.bank(user.bank_id) is not None
    return bool(user.exporter_uscc) and reference.exporter(user.exporter_uscc) is not None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read "\" as "/" ("/\evil.example") and drop tabs and newlines.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def landing_url(user: SessionUser) -> str:
    """Each role's home page."""
    return url_for("desk.index" if user.role == OFFICER else "portal.index")


def _here() -> str | None:
    """The page to come back to after signing in: this one, for a GET."""
    if request.method != "GET":
        return safe_next(urlsplit(request.referrer or "").path or None)
    path = request.full_path
    return safe_next(path[:-1] if path.endswith("?") else path)


@login_manager.unauthorized_handler
def _unauthorized() -> Any:
    flash(_("Please sign in to see this page."), "info")
    return redirect(url_for("auth.login", next=_here()))


def role_required(role: str) -> Callable:
    """Decorator: a signed-in user of ``role`` (officer or exporter); 403 for the other role."""
    if role not in (OFFICER, EXPORTER):
        raise ValueError(f"role: {role!r} is not a role")

    def wrap(view: Callable) -> Callable:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        return inner

    return wrap


def mark_fresh() -> None:
    """Record that the password was just entered."""
    session[AUTH_AT] = user_store().now()


def is_fresh() -> bool:
    settings = current_app.extensions["xinbao_settings"]
    entered = session.get(AUTH_AT)
    return isinstance(entered, int) and user_store().now() - entered <= (
        settings.fresh_login_seconds
    )


def fresh_login_required(view: Callable) -> Callable:
    """Decorator for approve, decline and disburse: the password must have been entered within
    XINBAO_FRESH_LOGIN_SECONDS, else the user re-enters it and comes back here (a GET) or to
    the page the form was on (a POST)."""

    @wraps(view)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not is_fresh():
            flash(_("Please enter your password again to continue."), "info")
            return redirect(url_for("auth.reauthenticate", next=_here()))
        return view(*args, **kwargs)

    return inner
