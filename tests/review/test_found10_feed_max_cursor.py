"""Review of issue 10: the largest cursor parse_cursor takes made Redis refuse the XRANGE.

``(18446744073709551615-18446744073709551615`` is no interval start for Redis ("invalid start
ID for the interval"): read_bank_feed raised a ResponseError, which GET /api/v1/events?after=
(branch feed) answers with a 500. No feed gives out the largest id, so it is refused as ahead
of the feed (400 in the API), never a server error.
"""

from __future__ import annotations

import json

import pytest

from workflow import keys
from workflow.feed import FeedCursorAhead, parse_cursor, read_bank_feed

LARGEST = "18446744073709551615-18446744073709551615"


@pytest.mark.parametrize("cursor", [LARGEST, " 18446744073709551615-18446744073709551615 "])
def test_the_largest_cursor_is_refused_as_ahead_of_the_feed(real_redis, cursor):
    event = {"v": 1, "type": "submitted", "by": "exporter:X", "at": "2027-01-04T09:00:00+00:00"}
    real_redis.xadd(keys.bank_feed("BOC-NB"), {"deal": "D-1", "event": json.dumps(event)})
    assert parse_cursor(cursor) == LARGEST
    with pytest.raises(FeedCursorAhead):
        read_bank_feed(real_redis, "BOC-NB", cursor)
    # Smaller cursors still read the entry.
    assert len(read_bank_feed(real_redis, "BOC-NB", "0-0")) == 1
