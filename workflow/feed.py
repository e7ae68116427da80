"""STAND-IN for the per-bank event feed (another branch builds the real one): reads the stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workflow import keys


@dataclass(frozen=True)
class FeedEntry:
    """One event of a bank's feed, as the bank may see it."""

    cursor: str
    deal_id: str
    event: dict[str, Any]
    event_id: str


class FeedCursorExpired(Exception):
    """The cursor points before the oldest entry the feed still keeps."""


def append_bank_feed(client: Any, bank_id: str, deal_id: str, index: int, event: dict) -> str:
    """Stand-in writer for tests: one entry on the bank's stream."""
    fields = {"deal_id": deal_id, "index": str(index), "event": json.dumps(event)}
    return str(client.xadd(keys.bank_feed(bank_id), fields))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_bank_feed(
    client: Any, bank_id: str, after: str | None, limit: int = 100
) -> list[FeedEntry]:
    """Entries of the bank's feed after ``after`` (exclusive), oldest first."""
    key = keys.bank_feed(bank_id)
    start = "-" if after is None else f"({after}"
    out = []
    for entry_id, fields in client.xrange(key, min=start, count=limit):
        f = {_text(k): _text(v) for k, v in fields.items()}
        out.append(
            FeedEntry(
                cursor=_text(entry_id),
                deal_id=f["deal_id"],
                event=json.loads(f["event"]),
                event_id=f"{f['deal_id']}:{f['index']}",
            )
        )
    return out
