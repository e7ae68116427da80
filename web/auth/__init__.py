"""Sign-in for the web pages: the login, logout and re-authentication views and their forms.

``web.auth.session`` holds what the other feature folders use: ``role_required``,
``fresh_login_required`` and ``SessionUser``. The JSON API authenticates by bearer token
instead (``web.bearer``).
"""

from __future__ import annotations

from flask import Blueprint

auth = Blueprint("auth", __name__, template_folder="templates")

from web.auth import views  # noqa: E402,F401  (registers the routes on the blueprint)
