"""/login, /logout and /reauthenticate: password sign-in with lockout, never saying whether a
username exists."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import confirm_login, current_user, login_required, login_user, logout_user

from web import i18n
from web.auth import auth
from web.auth.forms import LoginForm, LogoutForm, ReauthenticateForm
from web.auth.session import (
    SessionUser,
    landing_url,
    mark_fresh,
    safe_next,
    subject_exists,
    user_store,
)
from workflow.identifiers import printable
from workflow.users import LOGIN_ATTEMPTS

log = logging.getLogger("xinbao.web.auth")



def refused() -> str:
    """One answer for an unknown user, a wrong password, a locked and a disabled account."""
    return _(
        "Wrong username or password, or the account is locked or disabled. After"
        " %(attempts)s wrong passwords an account is locked for a while.",
        attempts=LOGIN_ATTEMPTS,
    )


@auth.route("/")
def home() -> Any:
    if current_user.is_authenticated:
        return redirect(landing_url(current_user))
    return redirect(url_for("auth.login"))


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target or landing_url(current_user))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        result = user_store().authenticate(form.username.data or "", form.password.data or "")
        if result.ok and not subject_exists(result.user):
            # Same answer as any refusal: the account exists but acts for nothing any more.
            result = dataclasses.replace(result, user=None, reason="subject_removed")
        if result.ok:
            assert result.user is not None
            # A fresh session: nothing from before the login (another user's, a planted one)
            # carries over; but a language picked on this page is the user's choice.
            chosen = session.get(i18n.CHOSEN)
            session.clear()
            who = SessionUser(result.user, user_store().open_session(result.user))
            login_user(who, fresh=True)
            session.permanent = True
            mark_fresh()
            log.info("login ok", extra={"username": result.user.username})
            response = redirect(target or landing_url(who))
            saved = i18n.on_login(result.user, chosen)
            return i18n.remember(response, saved) if saved else response
        log.warning(
            "login refused: %s",
            result.reason,
            extra={"username": printable((form.username.data or "")[:64])},
        )
        error = refused()
    return render_template("auth/login.html", form=form, error=error, next=target)


@auth.route("/reauthenticate", methods=["GET", "POST"])
@login_required
def reauthenticate() -> Any:
    target = safe_next(request.args.get("next"))
    form = ReauthenticateForm()
    error = None
    if form.validate_on_submit():
        result = user_store().authenticate(current_user.username, form.password.data or "")
        if result.ok:
            confirm_login()
            mark_fresh()
            return redirect(target or landing_url(current_user))
        error = _("Wrong password, or the account is locked or disabled.")
    return render_template("auth/reauthenticate.html", form=form, error=error, next=target)


@auth.post("/logout")
def logout() -> Any:
    # CSRFProtect has checked the token before we get here: another site cannot sign us out.
    LogoutForm()
    if current_user.is_authenticated:
        user_store().close_session(current_user.get_id())
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))
