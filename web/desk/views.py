"""The officer desk's queue: the bank's deals, most urgent first, with its counters and views."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template, request
from flask_login import current_user

from web.api import flow, seen_by_bank
from web.auth.session import role_required
from web.desk import desk
from web.desk.deal_page import officer_bank, status_words
from web.desk.loan_page import awaits
from web.formatting import time_left, to_datetime
from web.paging import PER_PAGE, page_number
from web.paging import last_page as pages_for
from web.words import bank_state_words
from workflow import keys
from workflow.deal import Deal
from workflow.reference.records import as_text
from workflow.states import State
from workflow.store import epoch_seconds
from workflow.users import OFFICER
from workflow.visibility import holds

DUE_SOON = timedelta(hours=2)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The queue's views: pending the bank's decision (""), awaiting my check, my first approvals
# awaiting someone else's check, every deal ever offered.
VIEWS = ("", "check", "mine", "all")
# The states a bank can filter its deals by: those a deal is in while a bank holds it.
BANK_STATES = tuple(
    s
    for s in State
    if s
    not in (
        State.SUBMITTED,
        State.VERIFYING,
        State.ON_HOLD,
        State.REJECTED,
        State.ROUTING,
        State.UNPLACED,
    )
)


def _due_soon(deadline: str | None, now: datetime) -> bool:
    moment = to_datetime(deadline)
    return moment is not None and moment <= now + DUE_SOON


def _exporter_names(deals: list[Deal]) -> dict[str, str]:
    """The exporters' names on a page, in one round trip (not one per exporter)."""
    usccs = sorted({d.fields.get("exporter_uscc", "") for d in deals} - {""})
    found = flow().reference.exporters(usccs)
    return {uscc: exporter.name if exporter else uscc for uscc, exporter in found.items()}


@desk.get("/")
@role_required(OFFICER)
def index() -> Any:
    """The queue: deals pending at the bank, most urgent deadline first; or ?show=all."""
    user = current_user.user
    bank_id = officer_bank()
    show = request.args.get("show", "")
    if show not in VIEWS:
        show = ""
    show_all = show == "all"
    page = page_number()
    store, now = flow().store, flow().clock()
    queue_key = keys.bank_queue(bank_id)
    awaiting_key = keys.awaiting_check(bank_id)
    mine_key = keys.first_approvals_by(bank_id, user.username)
    pipe = store.redis.pipeline(transaction=False)
    pipe.zcard(queue_key)
    pipe.zcount(queue_key, epoch_seconds(now), epoch_seconds(now + DUE_SOON))
    pipe.zcount(queue_key, "-inf", f"({epoch_seconds(now)}")
    pipe.zcard(awaiting_key)
    pipe.zcard(mine_key)
    pipe.zcount(keys.bank_missed(bank_id), epoch_seconds(_start_of_day(now)), "+inf")
    pending, due_soon, past_deadline, awaiting, mine, missed = pipe.execute()
    offset = (page - 1) * PER_PAGE
    state = request.args.get("state", "")
    state = state if show_all and state in BANK_STATES else ""
    if show_all:
        index = keys.bank_state(bank_id, state) if state else keys.by_bank(bank_id)
        total, deals = store.page(index, offset, PER_PAGE, True)
        deals = seen_by_bank(deals, bank_id)
    elif show == "check" and user.checker:
        total, deals = _awaiting_my_check(awaiting_key, mine_key, offset)
    elif show == "check":
        total, deals = 0, []  # only a checker checks: nothing awaits anyone else's check
    elif show == "mine":
        total, deals = store.page(mine_key, offset, PER_PAGE, False)
    else:
        total, deals = store.page(queue_key, offset, PER_PAGE, False)
    names = _exporter_names(deals)
    rows = []
    for deal in deals:
        f = deal.fields
        held = holds(deal, bank_id)
        due = f.get("deadline")
        if held and deal.get("pending_disbursement"):
            # A payout awaiting its check must be confirmed before the approval lapses.
            due = flow().lapses_at(deal, bank_id).isoformat()
        rows.append(
            {
                "id": deal.id,
                "deadline": due if held else None,
                "time_left": time_left(due, now) if held else "",
                "urgent": held and _due_soon(due, now),
                "eligible": f.get("eligible_amount") if held else None,
                "requested": f.get("requested_amount"),
                "currency": f.get("currency", ""),
                "buyer": deal.get("buyer") or {},
                "exporter": names.get(f.get("exporter_uscc", ""), ""),
                "status": status_words(deal, bank_id),
                "awaits": awaits(deal) if held else None,
                "updated_at": f.get("updated_at"),
            }
        )
    last_page = pages_for(total, PER_PAGE)
    bank = flow().reference.bank(bank_id)
    return render_template(
        "desk/queue.html",
        user=user,
        bank=bank,
        bank_id=bank_id,
        rows=rows,
        show=show,
        show_all=show_all,
        state=state,
        states=[(str(s), bank_state_words(s)) for s in BANK_STATES],
        page=page,
        last_page=last_page,
        total=total,
        counters={
            "pending": pending,
            "due_soon": due_soon,
            "past_deadline": past_deadline,
            "awaiting": awaiting,
            # Today on the pages' clock (Asia/Shanghai): swept already, or past and not yet.
            "missed_today": missed + past_deadline,
            "awaiting_me": max(awaiting - mine, 0) if user.checker else 0,
            "mine": mine,
        },
    )


def _start_of_day(now: datetime) -> datetime:
    """Midnight today in Asia/Shanghai, the day officers count in."""
    local = now.astimezone(SHANGHAI)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _awaiting_my_check(awaiting_key: str, mine_key: str, offset: int) -> tuple[int, list[Deal]]:
    """The bank's deals awaiting a check, most urgent first, without the officer's own first
    approvals (never theirs to check). One officer's own are few: they are read whole."""
    redis = flow().store.redis
    total, ids = others_page(redis, awaiting_key, mine_key, offset, PER_PAGE)
    return total, flow().store.get_many(ids)


def others_page(
    redis: Any, index_key: str, mine_key: str, offset: int, count: int
) -> tuple[int, list[str]]:
    """A page of ``index_key`` (ascending) leaving out the members of ``mine_key``, and how
    many there are: reads the few own members' ranks and then only the page's range, so a
    late page costs what the first does."""
    mine = [as_text(m) for m in redis.zrange(mine_key, 0, -1)]
    pipe = redis.pipeline(transaction=False)
    for member in mine:
        pipe.zrank(index_key, member)
    pipe.zcard(index_key)
    *ranks, size = pipe.execute()
    own = sorted(r for r in ranks if r is not None)
    # The rank of the page's first entry: each own entry at or before it pushes it one on.
    start = offset
    for rank in own:
        if rank > start:
            break
        start += 1
    ahead = sum(1 for rank in own if rank >= start)
    taken = set(mine)
    page = [as_text(m) for m in redis.zrange(index_key, start, start + count + ahead - 1)]
    return max(size - len(own), 0), [m for m in page if m not in taken][:count]
