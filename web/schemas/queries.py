"""The query strings of the deal list and the bank's event feed."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from workflow.feed import MAX_LIMIT as FEED_MAX_LIMIT
from workflow.feed import FeedCursorInvalid, parse_cursor


class ListQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    state = fields.String(validate=validate.OneOf(["pending_bank"]))


class FeedQuerySchema(Schema):
    """GET /api/v1/events: the cursor to read after (none: from the oldest kept) and how many."""

    after = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=FEED_MAX_LIMIT))

    @post_load
    def _cursor(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "after" in data:
            try:
                data["after"] = parse_cursor(data["after"])
            except FeedCursorInvalid as exc:
                raise ValidationError({"after": [str(exc)]}) from None
        return data
