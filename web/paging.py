"""Paging through a Redis index on the pages: the page asked for, and how many there are."""

from __future__ import annotations

from flask import request

PER_PAGE = 25
# A page number past this is read as this one: an index is never walked further.
MAX_PAGE = 100_000


def page_number() -> int:
    """The ``?page=`` asked for, 1 if absent or not a number, within 1..MAX_PAGE."""
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), MAX_PAGE)


def last_page(total: int, per_page: int = PER_PAGE) -> int:
    """The number of the last page of ``total`` items (1 for none)."""
    return max((total + per_page - 1) // per_page, 1)
