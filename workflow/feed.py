"""Each bank's event feed: a Redis stream per bank, written with every transition, read by cursor.

Writes happen inside the transition's Lua script (workflow/store.py adds a ``feed`` op), so an
event is in a bank's feed exactly when it is in the deal's log. Which banks get an event is
decided here (:func:`feed_targets`) to give each bank what ``visibility.offer_cut`` lets it see
of the deal log: everything from submission once the deal is offered to it (the earlier events
are copied in by the same script, "backfill"), up to and including the event that ended its
offer, and everything after if it approved. Reading applies the per-event rules
(``_own_or_public``, ``bank_event``) so the feed shows what GET /api/v1/deals/<id>/events shows.

Retention: each write removes the entries older than the retention (settings
``feed_retention_days``) from the bank's stream, and remembers the newest entry removed; a
cursor before it has missed events and gets :class:`FeedCursorExpired`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from workflow import keys
from workflow.deal import Deal
from workflow.states import TRANSITIONS, State
from workflow.visibility import _own_or_public, bank_event

DEFAULT_RETENTION_DAYS = 30
MAX_LIMIT = 1000
# A stream entry id: milliseconds and a sequence number, each an unsigned 64-bit integer.
CURSOR_RE = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_U64 = 2**64 - 1
_LAST_ID = f"{_U64}-{_U64}"


def _after_approval() -> frozenset[State]:
    """Approved and every state a deal can reach from there: the approving bank's for good."""
    seen, todo = set(), [State.APPROVED]
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo.extend(TRANSITIONS[state])
    return frozenset(seen)


AFTER_APPROVAL = _after_approval()


@dataclass(frozen=True)
class FeedEntry:
    """One event of a bank's feed, as that bank may see it."""

    cursor: str  # the stream entry id, e.g. "1764140000000-0": resume after it
    deal_id: str
    event: dict[str, Any]  # already as the bank may see it (bank_event applied)

    @property
    def event_id(self) -> str:
        """The event's stable id, ``<deal id>:<event version>``: the same for every copy of
        the event (in any bank's feed, in a webhook delivery), to de-duplicate on."""
        return f"{self.deal_id}:{self.event['v']}"


class FeedCursorExpired(Exception):
    """The cursor is older than what the feed keeps: events after it were removed."""

    def __init__(self, after: str, oldest_gone: str):
        super().__init__(
            f"cursor {after} is older than the feed keeps (entries up to {oldest_gone} "
            "were removed by retention); events after it were missed"
        )
        self.after, self.oldest_gone = after, oldest_gone


class FeedCursorInvalid(ValueError):
    """The cursor is not a feed entry id ("<milliseconds>-<sequence>")."""


class FeedCursorAhead(ValueError):
    """The cursor is past the newest event the feed ever held: not one this feed gave out
    (answering "nothing new" for it would hide every later event from the client)."""

    def __init__(self, cursor: str, newest: str | None):
        super().__init__(f"cursor {cursor} is ahead of the feed (newest: {newest or 'none'})")
        self.cursor, self.newest = cursor, newest


def parse_cursor(raw: str) -> str:
    """``raw`` as a full stream id ("123" -> "123-0"); FeedCursorInvalid if it is none."""
    match = CURSOR_RE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        raise FeedCursorInvalid("a cursor is a feed entry id such as 1764140000000-0")
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _U64 or seq > _U64:
        raise FeedCursorInvalid("a cursor's numbers are at most 18446744073709551615")
    return f"{ms}-{seq}"


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_bank_feed(
    client: Any, bank_id: str, after: str | None, limit: int = 100
) -> list[FeedEntry]:
    """Up to ``limit`` events of the bank's feed after the cursor ``after`` (None: from the
    oldest kept), oldest first, each as the bank may see it. Raises FeedCursorInvalid for a
    malformed cursor and FeedCursorExpired when retention removed events after ``after``.

    Resume with the last entry's cursor. Entries the bank may not see (another bank's
    maker-checker steps copied in with a deal's earlier events) are skipped, not counted."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}")
    position = parse_cursor(after) if after is not None else None
    stream, trimmed = keys.bank_feed(bank_id), keys.bank_feed_trimmed(bank_id)
    found: list[FeedEntry] = []
    # Nothing follows the largest id (and Redis refuses it as an exclusive start).
    while len(found) < limit and position != _LAST_ID:
        # One MULTI: the removal mark and the entries read at one moment, so no trim can
        # slip between the check and the read.
        pipe = client.pipeline(transaction=True)
        pipe.get(trimmed)
        pipe.xrange(stream, "-" if position is None else f"({position}", "+", count=limit)
        gone, batch = pipe.execute()
        gone = _text(gone) if gone else None
        if gone and position is not None and _id_key(position) < _id_key(gone):
            if found:
                break  # what was read stands; the next read from its cursor reports the gap
            raise FeedCursorExpired(position, gone)
        for entry_id, fields in batch:
            fields = {_text(k): _text(v) for k, v in fields.items()}
            event = json.loads(fields["event"])
            if _own_or_public(event, bank_id) and len(found) < limit:
                found.append(FeedEntry(_text(entry_id), fields["deal"], bank_event(event, bank_id)))
            position = _text(entry_id)
            if len(found) == limit:
                break
        if len(batch) < limit:
            break
    if not found and after is not None and position not in (None, "0-0"):
        _check_not_ahead(client, stream, position)
    return found


def _check_not_ahead(client: Any, stream: str, position: str) -> None:
    """FeedCursorAhead when ``position`` is past the newest entry (retention always keeps the
    newest one, so the newest entry is the newest id the feed ever gave out)."""
    newest = client.xrevrange(stream, "+", "-", count=1)
    newest_id = _text(newest[0][0]) if newest else None
    if newest_id is None or _id_key(position) > _id_key(newest_id):
        raise FeedCursorAhead(position, newest_id)


# --- writing (used by workflow.store inside each transition) -----------------------------------


def feed_targets(
    before: Deal | None, event_type: str, changes: dict[str, Any]
) -> list[tuple[str, bool]]:
    """The banks whose feed gets this event, each with whether the deal's earlier events go in
    first (the bank was just offered the deal for the first time). Mirrors
    ``visibility.offer_cut``: a bank sees the deal from its first offer until that offer ended
    (the ending event included), and for good if it approved."""
    if before is None:
        return []
    targets: list[tuple[str, bool]] = []
    holder = before.bank_id
    if (
        holder
        and (before.state == State.PENDING_BANK or before.state in AFTER_APPROVAL)
        and before.offered_banks.count(holder) == 1
    ):
        # Its first offer is open (this event may end it) or it approved: it sees the event.
        # (offer_cut shows a bank nothing after its first offer ended, even if offered again.)
        targets.append((holder, False))
    offered = changes.get("bank_id") if event_type == "offered_to_bank" else None
    if offered and offered not in before.offered_banks:
        targets.append((str(offered), True))
    return targets


def feed_json(event: dict[str, Any]) -> str:
    """The event as a feed entry stores it: without its field changes (no bank reads them)."""
    return json.dumps({k: v for k, v in event.items() if k != "set"}, separators=(",", ":"))


__all__ = [
    "AFTER_APPROVAL",
    "DEFAULT_RETENTION_DAYS",
    "MAX_LIMIT",
    "FeedCursorExpired",
    "FeedCursorAhead",
    "FeedCursorInvalid",
    "FeedEntry",
    "feed_json",
    "feed_targets",
    "parse_cursor",
    "read_bank_feed",
]
