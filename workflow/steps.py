"""What every step of the pipeline shares: one atomic move of a deal with its index changes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

from workflow import keys
from workflow.business_days import business_date
from workflow.deal import Deal
from workflow.errors import CHECKER_ROLE_REQUIRED, DealNotFound, MakerCheckerRefused, WrongState
from workflow.gateway import InsurerGateway
from workflow.limit_usage import usage_ops
from workflow.officers import officer_id
from workflow.portfolio import portfolio_ops
from workflow.reference import ReferenceRepository
from workflow.reference.cache import ReferenceCache, ReferenceView
from workflow.settings import Settings
from workflow.states import TERMINAL, WORKER_OWNED, State
from workflow.store import (
    DealStore,
    Move,
    Ops,
    VersionConflict,
    epoch_seconds,
    index_ops,
)

log = logging.getLogger("xinbao.workflow")

# One sweep reads its schedule SWEEP_BATCH entries at a time, at most SWEEP_BATCHES times.
SWEEP_BATCH = 500
SWEEP_BATCHES = 200
WORKER = "worker"
SWEEPER = "sweeper"


class Steps:
    """The base of the pipeline stages; ``workflow.pipeline.Workflow`` holds the parts."""

    store: DealStore
    reference: ReferenceRepository
    insurer: InsurerGateway
    settings: Settings
    clock: Callable[[], datetime]

    def _due_entries(self, index_key: str, now: datetime) -> Iterator[str]:
        """The entries of a schedule due by ``now``, batch after batch while batches come back
        full, so one sweep clears a backlog (after a restore, or a day of 100,000 due dates)
        instead of 500 per beat. A batch that repeats the last one (every entry conflicted
        with a concurrent move) ends the sweep; the next beat takes them up again."""
        last: list[str] = []
        for _ in range(SWEEP_BATCHES):
            batch = self.store.due(index_key, now, SWEEP_BATCH)
            if not batch or batch == last:
                return
            yield from batch
            if len(batch) < SWEEP_BATCH:
                return
            last = batch

    def _read_with_reference(self, deal_id: str) -> tuple[Deal | None, ReferenceView]:
        """The deal and a view of the reference data as of now, in one round trip: the
        reference version comes with the deal, so a reload is seen by the next step."""
        deal, version = self.store.get_with(deal_id, keys.reference_version())
        return deal, self._reference_at(version)

    def _reference_at(self, version: str | None) -> ReferenceView:
        """A view of the reference data at ``version``, from this process's cache."""
        cache = self.__dict__.get("_reference_cache")
        if cache is None or cache.repository is not self.reference:
            cache = self.__dict__["_reference_cache"] = ReferenceCache(self.reference)
        return cache.at(version)

    def today(self) -> date:
        """Today's business date (Asia/Shanghai)."""
        return business_date(self.clock())

    def approval_lapse_at(self, bank_id: str, given_at: datetime) -> datetime:
        """When an approval ``bank_id`` gave at ``given_at`` lapses if it is never paid out
        (the bank's own ``approval_lapse_days``, else the system's)."""
        bank = self.reference.bank(bank_id)
        days = (bank.approval_lapse_days if bank else None) or self.settings.approval_lapse_days
        return given_at + timedelta(days=days)

    def _held_by(self, deal_id: str, bank_id: str) -> Deal:
        """The deal if ``bank_id`` holds it (pending its decision, or approved by it and on)."""
        deal = self.store.get(deal_id)
        if deal is None or bank_id not in deal.offered_banks:
            raise DealNotFound(f"no deal {deal_id} was routed to bank {bank_id}")
        if deal.bank_id != bank_id:
            # What became of the deal after this bank's offer ended is none of its business:
            # the answer is the same whatever happened since.
            raise WrongState(f"deal {deal_id} is no longer with your bank")
        return deal

    def _send_back(
        self,
        deal: Deal,
        bank_id: str,
        officer: str,
        may_check: bool,
        reason: str,
        ref: str | None,
        entry: str,
        returned: str,
        event: str,
        due: datetime | None = None,
    ) -> Deal:
        """Undo a maker's step awaiting a check (the deal's ``entry``: a first approval or a
        disbursement): its maker recalls it or a checker sends it back; the deal stays where
        it is, the entry kept as ``returned``. ``ref`` names the entry the officer saw (None:
        whichever there is)."""
        pending = deal.get(entry)
        if pending is None or (ref is not None and pending.get("ref") != ref):
            raise WrongState(
                f"deal {deal.id} has no such step awaiting a check", state=str(deal.state)
            )
        if officer_id(officer) != pending["officer"] and not may_check:
            raise MakerCheckerRefused(
                CHECKER_ROLE_REQUIRED,
                "only the officer who made it or a checker can send it back",
            )
        ops = Ops()
        ops.zrem(keys.awaiting_check(bank_id), deal.id)
        ops.zrem(keys.first_approvals_by(bank_id, pending["officer"]), deal.id)
        try:
            return self._move(
                deal,
                deal.state,
                actor=f"bank:{bank_id}:{officer}",
                event=event,
                due=due,
                ops=ops,
                changes={
                    entry: None,
                    returned: {**pending, "returned_by": officer, "reason": reason},
                },
            )
        except VersionConflict as exc:
            raise WrongState(
                f"deal {deal.id} changed meanwhile; reload it", state=exc.state
            ) from exc

    # --- index bookkeeping that goes with every transition ------------------------------------

    def _ops(
        self,
        deal: Deal,
        new: State,
        now: datetime,
        due: datetime | None,
        ops: Ops,
        new_bank: str | None = None,
    ) -> Ops:
        old = deal.state
        old_bank = deal.bank_id
        if (old_bank, old) != (new_bank, new):
            # A deal is in its bank's index of its state while a bank holds it (and stays
            # in it once ended there, as that bank's history).
            if old_bank:
                ops.zrem(keys.bank_state(old_bank, old), deal.id)
            if new_bank:
                ops.zadd(keys.bank_state(new_bank, new), epoch_seconds(now), deal.id)
        if due is None and new in WORKER_OWNED:
            due = now + timedelta(seconds=self.settings.stale_after_seconds)
        index_ops(deal, new, now, due, ops)
        if old == State.PENDING_BANK and new != State.PENDING_BANK:
            ops.zrem(keys.deadlines(), deal.id)
            if deal.bank_id:
                ops.zrem(keys.bank_queue(deal.bank_id), deal.id)
                first = deal.get("first_approval")
                if first:
                    ops.zrem(keys.awaiting_check(deal.bank_id), deal.id)
                    ops.zrem(keys.first_approvals_by(deal.bank_id, first["officer"]), deal.id)
        if old == State.APPROVED and new != State.APPROVED:
            ops.zrem(keys.approval_lapses(), deal.id)
            entered = deal.get("pending_disbursement")
            if entered and deal.bank_id:
                ops.zrem(keys.awaiting_check(deal.bank_id), deal.id)
                ops.zrem(keys.first_approvals_by(deal.bank_id, entered["officer"]), deal.id)
        if old in (State.DISBURSED, State.OVERDUE) and new not in (State.DISBURSED, State.OVERDUE):
            ops.zrem(keys.due_dates(), deal.id)
        if new in TERMINAL:
            exposure = deal.fields.get("exposure")
            if exposure:
                ops.release(exposure, deal.id)
            app = deal.application
            for inv in app.invoices:
                ops.unlock(keys.receivable(app.exporter_uscc, app.buyer.code, inv.number), deal.id)
            for key in app.document_locks():
                ops.unlock(key, deal.id)
        return ops

    def _move(
        self,
        deal: Deal,
        new: State,
        *,
        actor: str,
        event: str,
        reasons: list[str] | None = None,
        changes: dict | None = None,
        due: datetime | None = None,
        ops: Ops | None = None,
        chain: Chain | None = None,
    ) -> Deal:
        """Move ``deal`` to ``new`` with the index, portfolio and limit-use changes that go
        with it, at once; or, given a ``chain``, stage the move on it and return the deal as
        it would leave it (``_commit`` writes the chain)."""
        now = self.clock()
        new_bank = (changes or {}).get("bank_id", deal.bank_id) or None
        all_ops = self._ops(deal, new, now, due, ops or Ops(), new_bank)
        portfolio_ops(deal, new, changes, all_ops)
        usage_ops(deal, new, changes, all_ops)
        if new in TERMINAL and deal.fields.get("reserved_amount"):
            # _ops releases the reservation: the deal no longer claims one.
            changes = {**(changes or {}), "reserved_amount": None}
        if deal.fields.get("first_approval") and new != State.PENDING_BANK:
            # A first approval belongs to this offer only: the decision record keeps who
            # made and who checked an approval.
            changes = {**(changes or {}), "first_approval": None}
        if deal.fields.get("pending_disbursement") and new != State.APPROVED:
            # Paid out (the loan names maker and checker), cancelled or lapsed: it is over.
            changes = {**(changes or {}), "pending_disbursement": None}
        move = Move(new, actor, event, reasons or [], changes or {}, all_ops, now)
        if chain is not None:
            return chain.add(deal, move)
        moved = self.store.transition(
            deal,
            new,
            actor=actor,
            event=event,
            reasons=move.reasons,
            changes=move.changes,
            ops=all_ops,
            now=now,
        )
        _log_move(deal.id, deal.state, move)
        return moved

    def _commit(self, chain: Chain) -> Deal:
        """Commit the moves staged on ``chain`` in one atomic step (VersionConflict,
        LimitExhausted, Locked as a single move would raise); the deal after the last."""
        moved = self.store.transitions(chain.start, chain.moves)
        chain.log()
        return moved[-1]


class Chain:
    """Moves of one deal staged by ``Steps._move(..., chain=)`` to commit in one script call
    (``Steps._commit``): each move starts from the deal as the one before would leave it."""

    def __init__(self, start: Deal):
        self.start = start
        self.moves: list[Move] = []
        self.froms: list[State] = []

    def add(self, deal: Deal, move: Move) -> Deal:
        self.moves.append(move)
        self.froms.append(deal.state)
        return DealStore.preview(deal, move)

    def log(self) -> None:
        """The log line of each move, once the chain committed."""
        for was, move in zip(self.froms, self.moves, strict=True):
            _log_move(self.start.id, was, move)


def _log_move(deal_id: str, was: State, move: Move) -> None:
    log.info(
        "deal %s %s -> %s",
        deal_id,
        was,
        move.new_state,
        extra={
            "deal_id": deal_id,
            "from_state": str(was),
            "to_state": str(move.new_state),
            "event": move.event,
            "actor": move.actor,
            "reasons": move.reasons,
        },
    )
