"""The officer desk's pages."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template
from flask_login import current_user

from web.auth.session import role_required
from web.desk import desk
from workflow.users import OFFICER


@desk.get("/")
@role_required(OFFICER)
def index() -> Any:
    user = current_user.user
    bank = current_app.extensions["xinbao"].reference.bank(user.bank_id)
    return render_template("desk/index.html", user=user, bank=bank)
