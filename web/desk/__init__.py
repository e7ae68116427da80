"""The bank officer desk, /bank/: for now the landing page; the queue and deal pages come next."""

from __future__ import annotations

from flask import Blueprint

desk = Blueprint("desk", __name__, url_prefix="/bank", template_folder="templates")

from web.desk import views  # noqa: E402,F401  (registers the routes on the blueprint)
