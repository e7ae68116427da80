"""The exporter portal, /exporter/: the exporter's deals, a new application, a deal page."""

from __future__ import annotations

from flask import Blueprint

portal = Blueprint("portal", __name__, url_prefix="/exporter", template_folder="templates")

from web.portal import application, deal_page, views  # noqa: E402,F401  (register the routes on the blueprint)
