"""The exporter portal's pages."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template
from flask_login import current_user

from web.auth.session import role_required
from web.portal import portal
from workflow.users import EXPORTER


@portal.get("/")
@role_required(EXPORTER)
def index() -> Any:
    user = current_user.user
    exporter = current_app.extensions["xinbao"].reference.exporter(user.exporter_uscc)
    return render_template("portal/index.html", user=user, exporter=exporter)
