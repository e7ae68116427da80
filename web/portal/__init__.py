"""The exporter portal, /exporter/: for now the landing page; deals and applications come next."""

from __future__ import annotations

from flask import Blueprint

portal = Blueprint("portal", __name__, url_prefix="/exporter", template_folder="templates")

from web.portal import views  # noqa: E402,F401  (registers the routes on the blueprint)
