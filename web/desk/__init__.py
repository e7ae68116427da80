"""The bank officer desk, /bank/: the queue, the deal pages and the portfolio."""

from __future__ import annotations

from flask import Blueprint

desk = Blueprint("desk", __name__, url_prefix="/bank", template_folder="templates")

from web.desk import (  # noqa: E402,F401  (register the routes on the blueprint)
    claims,
    deal_page,
    decision,
    deferrals,
    payout_check,
    portfolio,
    servicing,
    views,
)
