"""A stand-alone insurer simulator: an HTTP API shaped like public credit-insurer APIs, with faults.

Run it with ``xinbao insurer-sim``; Xinbao's HTTP adapter (workflow.insurer_http) talks to it in
tests, in ``make run`` with XINBAO_INSURER=sim, and in docker-compose. It is its own Flask app
with its own data (a reference-data JSON file) and shares nothing with Xinbao's web app.
"""

from __future__ import annotations

from insurer_sim.app import create_sim_app
from insurer_sim.book import Book, load_book
from insurer_sim.faults import Faults

__all__ = ["Book", "Faults", "create_sim_app", "load_book"]
