"""Each bank's event feed: exactly what the deal API shows the bank, in order, by cursor."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import HAIXIN, make_application
from workflow import keys
from workflow.feed import (
    FeedCursorExpired,
    FeedCursorInvalid,
    FeedEntry,
    parse_cursor,
    read_bank_feed,
)
from workflow.pipeline import Decision, WorkflowError
from workflow.states import State
from workflow.store import LimitExhausted, Locked, Ops, VersionConflict
from workflow.visibility import as_seen_by_bank

BOC, ICBC, CCB = "BOC-NB", "ICBC-NB", "CCB-NB"
BANKS = (BOC, ICBC, CCB)
DAY_MS = 86_400_000


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def whole_feed(wf, bank: str, page: int = 3) -> list[FeedEntry]:
    """The bank's feed read page by page (small pages: the cursor is exercised)."""
    out: list[FeedEntry] = []
    after = None
    while batch := read_bank_feed(wf.store.redis, bank, after, page):
        out += batch
        after = batch[-1].cursor
    return out


def deal_api_events(wf, bank: str, deal_id: str) -> list[dict]:
    """What GET /api/v1/deals/<id>/events shows the bank (nothing if never offered it)."""
    deal = wf.store.get(deal_id)
    if bank not in deal.offered_banks:
        return []
    return as_seen_by_bank(deal, wf.store.events(deal_id), bank)[1]


def assert_feed_is_the_deal_api(wf, deal_ids) -> dict[str, list[FeedEntry]]:
    feeds = {}
    for bank in BANKS:
        feed = feeds[bank] = whole_feed(wf, bank)
        ids = [e.event_id for e in feed]
        assert len(ids) == len(set(ids)), f"{bank} got an event twice: {ids}"
        cursors = [parse_cursor(e.cursor) for e in feed]
        assert cursors == sorted(cursors, key=lambda c: tuple(map(int, c.split("-"))))
        by_deal = defaultdict(list)
        for entry in feed:
            by_deal[entry.deal_id].append(entry.event)
        assert set(by_deal) <= set(deal_ids)
        for deal_id in deal_ids:
            assert by_deal.get(deal_id, []) == deal_api_events(wf, bank, deal_id), (bank, deal_id)
    return feeds


def pending(wf, amount="100000.00", requested="80000.00", number="INV-HX-1001"):
    app = make_application(amount=amount, requested_amount=requested, number=number)
    deal = wf.verify(wf.submit(app).deal.id)
    assert deal.state == State.PENDING_BANK and deal.bank_id == BOC
    return deal


def decline(wf, deal_id, bank):
    return wf.decide(deal_id, bank, Decision(False, "officer-x", reason="not our sector"))


def approve(wf, deal_id, bank, officer="wang", may_check=False):
    return wf.decide(deal_id, bank, Decision(True, officer, may_check=may_check))


# --- the feed shows what the deal API shows ------------------------------------------------------


def test_declined_then_routed_on_and_approved(wf):
    deal = pending(wf)
    decline(wf, deal.id, BOC)
    assert wf.route(deal.id).bank_id == ICBC
    approve(wf, deal.id, ICBC)
    wf.cancel_approval(deal.id, ICBC, "li", "terms changed")
    feeds = assert_feed_is_the_deal_api(wf, [deal.id])
    boc = [e.event["type"] for e in feeds[BOC]]
    assert boc[-2:] == ["offered_to_bank", "declined"]  # nothing after its offer ended
    icbc = [e.event["type"] for e in feeds[ICBC]]
    assert icbc[0] == "submitted" and icbc[-3:] == [
        "offered_to_bank",
        "approved",
        "approval_cancelled",
    ]
    # BOC's decline reaches ICBC with BOC's name hidden; the copies share their ids.
    declined = next(e for e in feeds[ICBC] if e.event["type"] == "declined")
    assert declined.event["by"] == "bank:other"
    assert declined.event_id in {e.event_id for e in feeds[BOC]}
    assert feeds[CCB] == []
    assert all("set" not in e.event for f in feeds.values() for e in f)


def test_another_banks_maker_checker_steps_stay_with_it(wf):
    deal = pending(wf, amount="400000.00", requested="320000.00")
    approve(wf, deal.id, BOC, "wang")  # a first approval: awaits BOC's checker
    wf.return_approval(deal.id, BOC, "zhao", True, "rate too low")
    decline(wf, deal.id, BOC)
    wf.route(deal.id)
    feeds = assert_feed_is_the_deal_api(wf, [deal.id])
    assert {"first_approval", "first_approval_returned"} <= {e.event["type"] for e in feeds[BOC]}
    icbc = [e.event["type"] for e in feeds[ICBC]]
    assert "first_approval" not in icbc and "first_approval_returned" not in icbc
    assert icbc[-2:] == ["declined", "offered_to_bank"]


def test_a_missed_deadline_ends_the_offer(wf):
    deal = pending(wf)
    wf.clock.advance(hours=25)
    assert wf.expire_deadlines() == [deal.id]
    wf.route(deal.id)
    wf.withdraw(deal.id, HAIXIN)
    feeds = assert_feed_is_the_deal_api(wf, [deal.id])
    assert feeds[BOC][-1].event["type"] == "deadline_missed"
    assert feeds[ICBC][-1].event["type"] == "withdrawn"


def test_an_approving_bank_sees_everything_after(wf):
    deal = pending(wf)
    approve(wf, deal.id, BOC)
    other = pending(wf, number="INV-HX-1002")
    decline(wf, other.id, BOC)
    wf.route(other.id)
    decline(wf, other.id, ICBC)
    wf.route(other.id)
    decline(wf, other.id, CCB)
    assert wf.route(other.id).state == State.UNPLACED
    feeds = assert_feed_is_the_deal_api(wf, [deal.id, other.id])
    # Both deals' events interleave in BOC's feed in the order they happened.
    assert [e.deal_id for e in feeds[BOC]].count(deal.id) == len(wf.store.events(deal.id))
    assert feeds[CCB][-1].event["type"] == "declined"


def test_a_deal_offered_again_to_a_bank_never_repeats_an_event(wf):
    """Routing never offers a deal twice to one bank; were it done, the bank's feed would
    neither repeat the events it has nor go past its first offer (as offer_cut)."""
    deal = pending(wf)
    decline(wf, deal.id, BOC)
    routed = wf.route(deal.id)
    decline(wf, deal.id, ICBC)
    boc_before = whole_feed(wf, BOC)
    deal = wf.store.get(deal.id)
    again = wf.store.transition(
        deal,
        State.PENDING_BANK,
        actor="worker",
        event="offered_to_bank",
        changes={"bank_id": BOC, "offered_banks": [*routed.offered_banks, BOC]},
    )
    wf.store.transition(
        again, State.ROUTING, actor="bank:BOC-NB:x", event="declined", changes={"bank_id": None}
    )
    feeds = assert_feed_is_the_deal_api(wf, [deal.id])
    assert feeds[BOC] == boc_before
    assert [e.event["type"] for e in feeds[BOC]][-2:] == ["offered_to_bank", "declined"]


# --- a refused transition writes nothing ---------------------------------------------------------


def test_a_refused_transition_adds_nothing_to_any_feed(wf):
    deal = pending(wf)
    r = wf.store.redis
    before = r.xlen(keys.bank_feed(BOC))
    stale = wf.store.get(deal.id)
    decline(wf, deal.id, BOC)
    after_decline = r.xlen(keys.bank_feed(BOC))
    assert after_decline == before + 1
    with pytest.raises(VersionConflict):
        wf.store.transition(stale, State.APPROVED, actor="bank:BOC-NB:x", event="approved")
    current = wf.route(deal.id)
    assert current.bank_id == ICBC
    icbc = r.xlen(keys.bank_feed(ICBC))
    with pytest.raises(LimitExhausted):
        wf.store.transition(
            current,
            State.APPROVED,
            actor="bank:ICBC-NB:x",
            event="approved",
            ops=Ops().reserve("feed-test", current.id, 100, 50),
        )
    r.set("xb:feed-test-lock", "someone-else")
    with pytest.raises(Locked):
        wf.store.transition(
            current,
            State.APPROVED,
            actor="bank:ICBC-NB:x",
            event="approved",
            ops=Ops().lock("xb:feed-test-lock", current.id),
        )
    assert r.xlen(keys.bank_feed(BOC)) == after_decline
    assert r.xlen(keys.bank_feed(ICBC)) == icbc
    assert_feed_is_the_deal_api(wf, [deal.id])


# --- cursors -------------------------------------------------------------------------------------


def test_resuming_from_a_cursor_gives_the_rest_once(wf):
    deal = pending(wf)
    approve(wf, deal.id, BOC)
    full = read_bank_feed(wf.store.redis, BOC, None, 1000)
    assert len(full) >= 4
    first = read_bank_feed(wf.store.redis, BOC, None, 2)
    rest = read_bank_feed(wf.store.redis, BOC, first[-1].cursor, 1000)
    assert first + rest == full
    assert read_bank_feed(wf.store.redis, BOC, full[-1].cursor) == []
    # Later events come after the last cursor read.
    wf.cancel_approval(deal.id, BOC, "wang", "no")
    later = read_bank_feed(wf.store.redis, BOC, full[-1].cursor)
    assert [e.event["type"] for e in later] == ["approval_cancelled"]


def test_filtered_entries_do_not_count_against_the_limit(wf):
    deal = pending(wf, amount="400000.00", requested="320000.00")
    for officer in ("wang", "li", "wu"):
        approve(wf, deal.id, BOC, officer)
        wf.return_approval(deal.id, BOC, officer, False, "recalled")
    decline(wf, deal.id, BOC)
    wf.route(deal.id)
    # ICBC's stream holds BOC's six steps it may not see, between the offer to BOC and its
    # decline: they are skipped, and a page is still full while there are events to give.
    r = wf.store.redis
    visible = read_bank_feed(r, ICBC, None, 1000)
    assert r.xlen(keys.bank_feed(ICBC)) == len(visible) + 6
    pages, after = [], None
    while page := read_bank_feed(r, ICBC, after, 2):
        pages.append(page)
        after = page[-1].cursor
    assert [len(p) for p in pages[:-1]] == [2] * (len(pages) - 1)
    assert [e for p in pages for e in p] == visible
    assert [e.event["type"] for e in visible][-2:] == ["declined", "offered_to_bank"]
    assert_feed_is_the_deal_api(wf, [deal.id])


@pytest.mark.parametrize(
    "raw", ["", "abc", "1-2-3", "-1", "1-", "99999999999999999999999", "1 OR 1", "(1-0"]
)
def test_a_malformed_cursor_is_refused(fake_redis, raw):
    with pytest.raises(FeedCursorInvalid):
        read_bank_feed(fake_redis, BOC, raw)


def test_a_cursor_may_name_milliseconds_only():
    assert parse_cursor("1764140000000") == "1764140000000-0"
    assert parse_cursor("1764140000000-7") == "1764140000000-7"


# --- retention -----------------------------------------------------------------------------------


def _old_entries(r, bank: str, ages_days: list[float], now_ms: int) -> list[str]:
    """Entries put straight into a bank's stream as if written ``ages_days`` ago."""
    ids = []
    for n, age in enumerate(ages_days):
        event = {"v": n + 1, "at": "", "by": "worker", "type": "old", "from": None, "to": "x"}
        entry_id = f"{now_ms - int(age * DAY_MS)}-0"
        r.xadd(keys.bank_feed(bank), {"deal": "OLD", "event": json.dumps(event)}, id=entry_id)
        ids.append(entry_id)
    return ids


def _redis_ms(r) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_retention_removes_old_entries_and_refuses_a_cursor_before_them(wf):
    r = wf.store.redis
    wf.store.feed_retention_ms = 30 * DAY_MS
    old = _old_entries(r, BOC, [40, 35, 31, 20], _redis_ms(r))
    assert [e.cursor for e in read_bank_feed(r, BOC, None)] == old  # nothing trimmed yet
    deal = pending(wf)  # writes BOC's feed: trims what is older than 30 days
    kept = read_bank_feed(r, BOC, None, 1000)
    assert kept[0].cursor == old[3]
    assert [e.deal_id for e in kept[1:]] == [deal.id] * (len(kept) - 1)
    assert r.get(keys.bank_feed_trimmed(BOC)) == old[2]
    # A cursor whose later events were removed: told, not skipped past.
    for gone in old[:2]:
        with pytest.raises(FeedCursorExpired) as expired:
            read_bank_feed(r, BOC, gone)
        assert expired.value.oldest_gone == old[2]
    with pytest.raises(FeedCursorExpired):
        read_bank_feed(r, BOC, "0-0")
    # The newest removed entry was read: nothing after it is missing.
    assert read_bank_feed(r, BOC, old[2], 1000) == kept
    assert read_bank_feed(r, BOC, old[3], 1000) == kept[1:]
    # Other banks' feeds are untouched.
    assert r.get(keys.bank_feed_trimmed(ICBC)) is None


def test_a_feed_never_trimmed_takes_any_cursor(wf):
    pending(wf)
    everything = read_bank_feed(wf.store.redis, BOC, None)
    assert everything and read_bank_feed(wf.store.redis, BOC, "0-0") == everything


def test_retention_comes_from_the_settings(wf):
    from workflow.settings import SettingsError, load_settings

    assert load_settings({}).feed_retention_days == 30
    assert load_settings({"XINBAO_FEED_RETENTION_DAYS": "7"}).feed_retention_days == 7
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(SettingsError, match="XINBAO_FEED_RETENTION_DAYS"):
            load_settings({"XINBAO_FEED_RETENTION_DAYS": bad})


# --- property: over random routes, a bank's feed is its deal API, never another's --------------

ACTIONS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),
        st.sampled_from(
            [
                "approve",
                "decline",
                "big_first",
                "send_back",
                "expire",
                "withdraw",
                "cancel",
                "check",
            ]
        ),
    ),
    max_size=14,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(large=st.booleans(), actions=ACTIONS)
def test_any_route_feed_equals_the_deal_api(make_workflow, large, actions):
    wf = make_workflow(fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True))
    ids = []
    for n in range(3):
        # The first deal may need BOC's checker; together they fit the buyer's limit.
        amount, asked = ("250000.00", "200000.00") if large and not n else ("100000.00", "80000.00")
        ids.append(pending(wf, amount, asked, number=f"INV-HX-100{n + 1}").id)
    for which, action in actions:
        deal = wf.store.get(ids[which])
        bank = deal.bank_id
        try:
            if action == "approve" and bank:
                approve(wf, deal.id, bank, "wang")
            elif action == "check" and bank:
                approve(wf, deal.id, bank, "zhao", may_check=True)
            elif action == "big_first" and bank:
                wf.decide(deal.id, bank, Decision(True, "wu", amount=Decimal("160000.00")))
            elif action == "send_back" and bank:
                wf.return_approval(deal.id, bank, "zhao", True, "no")
            elif action == "decline" and bank:
                decline(wf, deal.id, bank)
                wf.route(deal.id)
            elif action == "expire":
                wf.clock.advance(hours=100)
                for expired in wf.expire_deadlines():
                    wf.route(expired)
            elif action == "withdraw":
                wf.withdraw(deal.id, HAIXIN)
            elif action == "cancel" and bank:
                wf.cancel_approval(deal.id, bank, "wang", "changed")
        except WorkflowError:
            pass
    feeds = assert_feed_is_the_deal_api(wf, ids)
    for bank, feed in feeds.items():
        for entry in feed:
            assert bank in wf.store.get(entry.deal_id).offered_banks
            by = entry.event["by"]
            assert (
                not by.startswith("bank:") or by.startswith(f"bank:{bank}:") or (by == "bank:other")
            )


# --- webhooks deliver the feed -------------------------------------------------------------------


def test_webhooks_deliver_each_bank_its_feed_from_real_transitions(wf):
    """The feed the transitions write is what each bank's webhook posts: the same events and
    ids, in feed order, nothing of another bank's deals."""
    from tests.workflow.test_webhooks import Clock as HookClock
    from tests.workflow.test_webhooks import Receiver, run
    from workflow import webhooks

    r = wf.store.redis
    urls = {
        bank: webhooks.add_webhook(r, bank, f"https://{bank.lower()}.example/h", now=1e9).url
        for bank in BANKS
    }
    deal = pending(wf)
    decline(wf, deal.id, BOC)
    wf.route(deal.id)
    approve(wf, deal.id, ICBC)
    receiver = Receiver()
    run(r, receiver, HookClock(), rounds=2)
    for bank in BANKS:
        posted = receiver.bodies(urls[bank])
        feed = whole_feed(wf, bank)
        assert [b["event_id"] for b in posted] == [e.event_id for e in feed]
        assert [{k: b[k] for k in e.event} for b, e in zip(posted, feed, strict=True)] == [
            e.event for e in feed
        ]
    assert receiver.bodies(urls[CCB]) == []
    icbc = [b["type"] for b in receiver.bodies(urls[ICBC])]
    assert icbc[0] == "submitted" and icbc[-1] == "approved"
