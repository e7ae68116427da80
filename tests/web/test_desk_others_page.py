"""The "awaiting my check" page reads only its own range, and is the page of the whole list
without the officer's own entries."""

from __future__ import annotations

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from web.desk.views import others_page


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 40),
    own=st.sets(st.integers(0, 45), max_size=10),
    offset=st.integers(0, 45),
    count=st.integers(1, 7),
)
def test_others_page_is_the_filtered_list_paged(size, own, offset, count):
    r = fakeredis.FakeRedis(decode_responses=True)
    members = [f"d{n:03d}" for n in range(size)]
    if members:
        r.zadd("index", {m: n for n, m in enumerate(members)})
    mine = {f"d{n:03d}" for n in own}  # some may not be in the index at all
    if mine:
        r.zadd("mine", {m: 0 for m in mine})
    others = [m for m in members if m not in mine]
    assert others_page(r, "index", "mine", offset, count) == (
        len(others), others[offset : offset + count]
    )
