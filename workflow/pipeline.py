"""The deal pipeline's steps: submit, verify, route, bank decision, withdraw, and the sweeps.

Each step reads the deal, decides with the pure rules in ``checks`` and ``routing``, and
commits one atomic transition. Steps are idempotent: run twice (a redelivered task, a sweep
that re-dispatched a slow step) they change nothing twice, because every commit is a
compare-and-set on the version read and a step only acts on the state it expects.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from workflow import keys
from workflow.checks import LIMIT_ROOM_CHECK, verify_cover, whitelist_status
from workflow.deal import Application, Deal, application_fields, utcnow
from workflow.gateway import InsurerGateway
from workflow.money import from_cents, quantize, to_cents
from workflow.reasons import Reason
from workflow.reference import ReferenceRepository
from workflow.routing import RoutingInput, next_offer
from workflow.settings import Settings
from workflow.states import TERMINAL, WORKER_OWNED, State, sources_of
from workflow.store import (
    DealStore,
    LimitExhausted,
    Locked,
    Ops,
    VersionConflict,
    epoch_seconds,
    index_ops,
)

log = logging.getLogger("xinbao.workflow")

WORKER = "worker"
SWEEPER = "sweeper"


class WorkflowError(Exception):
    """A request the workflow refuses; ``code`` is machine-readable."""

    code = "CONFLICT"

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.details = details


class DealNotFound(WorkflowError):
    code = "NOT_FOUND"


class DuplicateReceivable(WorkflowError):
    code = str(Reason.DUPLICATE_RECEIVABLE)


class IdempotencyKeyReused(WorkflowError):
    code = "IDEMPOTENCY_KEY_REUSED"


class WrongState(WorkflowError):
    code = "INVALID_STATE"


class AlreadyApproved(WrongState):
    """The exporter may not withdraw once a bank has approved: the money may be out."""

    code = "ALREADY_APPROVED"


class InvalidDecision(WorkflowError):
    """A decision whose values the deal cannot take (e.g. more than the offered amount)."""

    code = "INVALID_DECISION"

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)
        self.field = field


@dataclass(frozen=True)
class Submitted:
    deal: Deal
    replayed: bool


@dataclass(frozen=True)
class Decision:
    approve: bool
    officer: str
    amount: Decimal | None = None
    annual_rate: Decimal | None = None
    reason: str | None = None


def new_deal_id() -> str:
    # 80 random bits: unguessable, and short enough to keep index entries small.
    return secrets.token_hex(10)


@dataclass
class Workflow:
    store: DealStore
    reference: ReferenceRepository
    insurer: InsurerGateway
    settings: Settings
    clock: Callable[[], datetime] = utcnow

    # --- index bookkeeping that goes with every transition ------------------------------------

    def _ops(self, deal: Deal, new: State, now: datetime, due: datetime | None, ops: Ops) -> Ops:
        old = deal.state
        if due is None and new in WORKER_OWNED:
            due = now + timedelta(seconds=self.settings.stale_after_seconds)
        index_ops(deal, new, now, due, ops)
        if old == State.PENDING_BANK and new != State.PENDING_BANK:
            ops.zrem(keys.deadlines(), deal.id)
            if deal.bank_id:
                ops.zrem(keys.bank_queue(deal.bank_id), deal.id)
        if new in TERMINAL:
            limit_id = deal.fields.get("limit_id")
            if limit_id:
                ops.release(limit_id, deal.id)
            app = deal.application
            for inv in app.invoices:
                ops.unlock(keys.receivable(app.exporter_uscc, app.buyer.code, inv.number), deal.id)
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
    ) -> Deal:
        now = self.clock()
        all_ops = self._ops(deal, new, now, due, ops or Ops())
        if new in TERMINAL and deal.fields.get("reserved_amount"):
            # _ops releases the reservation: the deal no longer claims one.
            changes = {**(changes or {}), "reserved_amount": None}
        moved = self.store.transition(
            deal,
            new,
            actor=actor,
            event=event,
            reasons=reasons,
            changes=changes,
            ops=all_ops,
            now=now,
        )
        log.info(
            "deal %s %s -> %s",
            deal.id,
            deal.state,
            new,
            extra={
                "deal_id": deal.id,
                "from_state": str(deal.state),
                "to_state": str(new),
                "event": event,
                "actor": actor,
                "reasons": reasons or [],
            },
        )
        return moved

    # --- submit ------------------------------------------------------------------------------

    def submit(self, app: Application, idempotency_key: str | None = None) -> Submitted:
        """Commit a new deal; raises DuplicateReceivable or IdempotencyKeyReused."""
        now = self.clock()
        deal_id = new_deal_id()
        ops = Ops()
        if idempotency_key:
            idem_key = keys.idempotency(app.exporter_uscc, idempotency_key)
            ops.lock(idem_key, deal_id, self.settings.idempotency_ttl_seconds)
        receivables = {
            keys.receivable(app.exporter_uscc, app.buyer.code, inv.number): inv.number
            for inv in app.invoices
        }
        for key in receivables:
            ops.lock(key, deal_id)
        ops.zadd(keys.by_exporter(app.exporter_uscc), epoch_seconds(now), deal_id)
        ops.rpush(keys.ready(), deal_id)
        due = now + timedelta(seconds=self.settings.stale_after_seconds)
        ops.zadd(keys.by_state(State.SUBMITTED), epoch_seconds(due), deal_id)
        fields = {
            **application_fields(app),
            "invoice_total": app.invoice_total,
            "request_digest": app.fingerprint(),
        }
        if idempotency_key:
            fields["idempotency_key"] = idempotency_key
        try:
            deal = self.store.create(
                deal_id, fields, actor=f"exporter:{app.exporter_uscc}", ops=ops, now=now
            )
        except VersionConflict:
            # The client library retried a create whose first attempt did commit.
            deal = self.store.get(deal_id)
            if deal is None or deal.fields.get("request_digest") != app.fingerprint():
                raise
        except Locked as exc:
            if idempotency_key and exc.key == keys.idempotency(app.exporter_uscc, idempotency_key):
                existing = self.store.get(exc.holder)
                if existing and existing.fields.get("request_digest") == app.fingerprint():
                    return Submitted(existing, replayed=True)
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used for a different request", deal_id=exc.holder
                ) from exc
            invoice = receivables.get(exc.key, "?")
            raise DuplicateReceivable(
                f"invoice {invoice} is already in a live deal", invoice=invoice, deal_id=exc.holder
            ) from exc
        log.info("deal %s submitted", deal_id, extra={"deal_id": deal_id, "event": "submitted"})
        return Submitted(deal, replayed=False)

    # --- verify ------------------------------------------------------------------------------

    def verify(self, deal_id: str) -> Deal | None:
        """Check cover and whitelist; reserve the limit; then route. Safe to run any number of
        times: it only acts on a deal in submitted, on_hold, verifying or routing."""
        for _ in range(5):
            deal = self.store.get(deal_id)
            if deal is None:
                log.warning("verify: no deal %s", deal_id, extra={"deal_id": deal_id})
                return None
            if deal.state == State.ON_HOLD and not self._hold_over(deal):
                return deal  # a stray retry: the hold ends when its time comes, not before
            try:
                if deal.state in (State.SUBMITTED, State.ON_HOLD):
                    deal = self._move(
                        deal, State.VERIFYING, actor=WORKER, event="verification_started"
                    )
                if deal.state == State.VERIFYING:
                    deal = self._check(deal)
                if deal.state == State.ROUTING:
                    return self._route(deal)
                return deal
            except VersionConflict:
                continue  # someone else moved it: re-read and carry on from where it is now
        return self.store.get(deal_id)

    def _check(self, deal: Deal) -> Deal:
        app = deal.application
        today = self.clock().date()
        facts = self.insurer.cover_facts(app)
        verdict = verify_cover(app, facts, today)
        whitelist = whitelist_status(self.reference.whitelists_of(app.exporter_uscc), today)
        # Only failures are stored; check_results() derives the full table from them.
        changes = {"failures": verdict.failures, "whitelist": whitelist.to_wire()}
        if verdict.warnings:
            changes["warnings"] = verdict.warnings
        if not verdict.passed:
            return self._move(
                deal,
                State.REJECTED,
                actor=WORKER,
                event="rejected",
                reasons=verdict.reasons,
                changes={**changes, "reasons": verdict.reasons},
            )
        limit = verdict.limit
        assert limit is not None  # a passed verdict has found a limit
        policy = facts.policy
        assert policy is not None
        insured = quantize(app.invoice_total * policy.coverage_ratio)
        reserve = Ops().reserve(
            limit.limit_id, deal.id, to_cents(app.invoice_total), to_cents(limit.amount)
        )
        notes = [] if whitelist.whitelisted else [str(whitelist.reason)]
        notes += [w["code"] for w in verdict.warnings]
        try:
            return self._move(
                deal,
                State.ROUTING,
                actor=WORKER,
                event="verified",
                reasons=notes,
                changes={
                    **changes,
                    "limit_id": limit.limit_id,
                    "reserved_amount": app.invoice_total,
                    "insured_amount": insured,
                    "coverage_ratio": str(policy.coverage_ratio),
                    "max_credit_days": policy.max_credit_days,
                },
                ops=reserve,
            )
        except LimitExhausted:
            room = from_cents(
                max(to_cents(limit.amount) - self.store.reserved_cents(limit.limit_id), 0)
            )
            failure = {
                "invoice": "*",
                "check": LIMIT_ROOM_CHECK,
                "reason": str(Reason.LIMIT_INSUFFICIENT),
                "available": str(room),
            }
            reasons = [str(Reason.LIMIT_INSUFFICIENT)]
            return self._move(
                deal,
                State.REJECTED,
                actor=WORKER,
                event="rejected",
                reasons=reasons,
                changes={**changes, "failures": [failure], "reasons": reasons},
            )

    def hold(self, deal_id: str, why: str = str(Reason.INSURER_UNAVAILABLE)) -> Deal | None:
        """Park a deal whose verification cannot finish now; the sweeper retries it when
        ``hold_retry_seconds`` have passed, and nothing resumes it earlier."""
        for _ in range(5):
            deal = self.store.get(deal_id)
            if deal is None or deal.state not in (State.SUBMITTED, State.VERIFYING):
                return deal
            until = self.clock() + timedelta(seconds=self.settings.hold_retry_seconds)
            try:
                if deal.state == State.SUBMITTED:
                    deal = self._move(
                        deal, State.VERIFYING, actor=WORKER, event="verification_started"
                    )
                return self._move(
                    deal,
                    State.ON_HOLD,
                    actor=WORKER,
                    event="on_hold",
                    reasons=[why],
                    changes={"hold_reason": why, "hold_until": until},
                    due=until,
                )
            except VersionConflict:
                continue
        return self.store.get(deal_id)

    def _hold_over(self, deal: Deal) -> bool:
        until = deal.fields.get("hold_until")
        return not until or datetime.fromisoformat(until) <= self.clock()

    def expect_retry(self, deal_id: str, delay_seconds: float) -> None:
        """A verification will be retried in ``delay_seconds``: keep the stranded-deal sweep
        from starting a second one meanwhile."""
        due = self.clock() + timedelta(seconds=delay_seconds + self.settings.stale_after_seconds)
        deal = self.store.get(deal_id)
        if deal is not None and deal.state in (State.SUBMITTED, State.VERIFYING):
            self.store.defer(keys.by_state(deal.state), deal_id, deal.version, due)

    # --- route -------------------------------------------------------------------------------

    def route(self, deal_id: str) -> Deal | None:
        """Offer a deal in ``routing`` to the next eligible bank, or end it ``unplaced``."""
        for _ in range(5):
            deal = self.store.get(deal_id)
            if deal is None or deal.state != State.ROUTING:
                return deal
            try:
                return self._route(deal)
            except VersionConflict:
                continue
        return self.store.get(deal_id)

    def _route(self, deal: Deal) -> Deal:
        now = self.clock()
        app = deal.application
        whitelist = deal.get("whitelist", {})
        routing_input = RoutingInput(
            currency=app.currency,
            requested_amount=app.requested_amount,
            insured_amount=deal.decimal("insured_amount") or Decimal(0),
            latest_due=max(inv.due_date for inv in app.invoices),
            today=now.date(),
            whitelisted=bool(whitelist.get("whitelisted")),
            max_credit_days=int(deal.fields.get("max_credit_days") or 180),
        )
        offered = deal.offered_banks
        offer, passed_over = next_offer(self.reference.banks(), routing_input, offered)
        notes = {**deal.get("routing_notes", {}), **passed_over}
        if offer is None:
            reasons = [str(Reason.NO_ELIGIBLE_BANK)]
            return self._move(
                deal,
                State.UNPLACED,
                actor=WORKER,
                event="unplaced",
                reasons=reasons,
                changes={
                    "reasons": reasons,
                    "routing_notes": notes,
                    "bank_id": None,
                    "deadline": None,
                },
            )
        deadline = now + timedelta(hours=float(offer.decision_hours))
        ops = Ops()
        ops.zadd(keys.deadlines(), epoch_seconds(deadline), deal.id)
        ops.zadd(keys.bank_queue(offer.bank_id), epoch_seconds(deadline), deal.id)
        ops.zadd(keys.by_bank(offer.bank_id), epoch_seconds(now), deal.id)
        return self._move(
            deal,
            State.PENDING_BANK,
            actor=WORKER,
            event="offered_to_bank",
            due=deadline,
            changes={
                "bank_id": offer.bank_id,
                "offered_banks": [*offered, offer.bank_id],
                "pricing": offer.to_wire(),
                "eligible_amount": offer.amount,
                "deadline": deadline,
                "routing_notes": notes,
            },
            ops=ops,
        )

    # --- bank decision -----------------------------------------------------------------------

    def decide(self, deal_id: str, bank_id: str, decision: Decision) -> Deal:
        """A bank's approve or decline of a deal it holds. Raises DealNotFound / WrongState."""
        deal = self._held_by(deal_id, bank_id)
        if deal.state != State.PENDING_BANK:
            raise WrongState(
                f"deal {deal_id} is {deal.state}, not pending your decision", state=str(deal.state)
            )
        deadline = deal.fields.get("deadline")
        if deadline and datetime.fromisoformat(deadline) <= self.clock():
            # Past the deadline the deal belongs to the next bank, even before the sweep runs.
            raise WrongState(
                f"the decision deadline for deal {deal_id} has passed", state=str(deal.state)
            )
        actor = f"bank:{bank_id}:{decision.officer}"
        record = {
            "bank_id": bank_id,
            "officer": decision.officer,
            "decision": "approve" if decision.approve else "decline",
        }
        try:
            if decision.approve:
                offered = deal.decimal("eligible_amount") or Decimal(0)
                amount = decision.amount if decision.amount is not None else offered
                if amount <= 0 or amount > offered:
                    raise InvalidDecision(
                        "amount", f"must be more than 0 and at most the financeable {offered}"
                    )
                rate = decision.annual_rate
                if rate is None:
                    rate = Decimal(deal.get("pricing", {}).get("annual_rate", "0"))
                record.update(amount=str(quantize(amount)), annual_rate=str(rate))
                return self._move(
                    deal,
                    State.APPROVED,
                    actor=actor,
                    event="approved",
                    changes={
                        "approved_amount": amount,
                        "annual_rate": str(rate),
                        "decision": record,
                        "deadline": None,
                    },
                )
            record["reason"] = decision.reason or ""
            return self._move(
                deal,
                State.ROUTING,
                actor=actor,
                event="declined",
                reasons=[str(Reason.BANK_DECLINED)],
                changes={"decision": record, "bank_id": None, "deadline": None},
            )
        except VersionConflict as exc:
            raise WrongState(
                f"deal {deal_id} changed while you decided; reload it", state=exc.state
            ) from exc

    # --- withdraw ----------------------------------------------------------------------------

    def withdraw(self, deal_id: str, exporter_uscc: str, note: str | None = None) -> Deal:
        """The exporter withdraws the application, at any state before a bank approves it."""
        for _ in range(5):
            deal = self.store.get(deal_id)
            if deal is None or deal.fields.get("exporter_uscc") != exporter_uscc:
                raise DealNotFound(f"no deal {deal_id} for this exporter")
            if deal.state == State.WITHDRAWN:
                return deal
            if deal.state not in _withdrawable():
                if deal.state not in TERMINAL:
                    # Approved (and later): the bank may have paid; only it can cancel.
                    raise AlreadyApproved(
                        f"deal {deal_id} is {deal.state}: the bank has approved it, so only "
                        "the approving bank can cancel it",
                        state=str(deal.state),
                    )
                raise WrongState(
                    f"a deal in {deal.state} can no longer be withdrawn", state=str(deal.state)
                )
            reasons = [str(Reason.WITHDRAWN_BY_EXPORTER)]
            try:
                return self._move(
                    deal,
                    State.WITHDRAWN,
                    actor=f"exporter:{exporter_uscc}",
                    event="withdrawn",
                    reasons=reasons,
                    changes={
                        "reasons": reasons,
                        "deadline": None,
                        **({"withdraw_note": note} if note else {}),
                    },
                )
            except VersionConflict:
                continue  # a worker moved it meanwhile: withdraw from its new state
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def cancel_approval(self, deal_id: str, bank_id: str, officer: str, reason: str) -> Deal:
        """The approving bank cancels its approval before disbursement: the limit reservation
        and the receivable locks are released in the same atomic step. Repeating it (a double
        click, a client retry) returns the cancelled deal."""
        for _ in range(5):
            deal = self._held_by(deal_id, bank_id)
            if deal.state == State.CANCELLED:
                return deal
            if deal.state != State.APPROVED:
                raise WrongState(
                    f"deal {deal_id} is {deal.state}, not approved by your bank",
                    state=str(deal.state),
                )
            reasons = [str(Reason.APPROVAL_CANCELLED_BY_BANK)]
            try:
                return self._move(
                    deal,
                    State.CANCELLED,
                    actor=f"bank:{bank_id}:{officer}",
                    event="approval_cancelled",
                    reasons=reasons,
                    changes={
                        "reasons": reasons,
                        "cancellation": {"bank_id": bank_id, "officer": officer, "reason": reason},
                    },
                )
            except VersionConflict:
                continue  # re-read: a repeat of this cancel landed first, or the deal moved
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _held_by(self, deal_id: str, bank_id: str) -> Deal:
        """The deal if ``bank_id`` holds it (pending its decision, or approved by it)."""
        deal = self.store.get(deal_id)
        if deal is None or bank_id not in deal.offered_banks:
            raise DealNotFound(f"no deal {deal_id} was routed to bank {bank_id}")
        if deal.bank_id != bank_id:
            # What became of the deal after this bank's offer ended is none of its business:
            # the answer is the same whatever happened since.
            raise WrongState(f"deal {deal_id} is no longer with your bank")
        return deal

    # --- sweeps ------------------------------------------------------------------------------

    def expire_deadlines(self) -> list[str]:
        """Move every deal whose bank let its decision deadline pass back to ``routing``.

        Safe to run in several processes at once: each move is a compare-and-set on the
        version read, so of two sweeps one moves the deal and the other gets a conflict."""
        now = self.clock()
        rerouted = []
        for deal_id in self.store.due(keys.deadlines(), now):
            deal = self.store.get(deal_id)
            if deal is None or deal.state != State.PENDING_BANK:
                # The transition out of pending_bank removes the entry; this is a leftover.
                # Only while the deal is as read: it may since have been offered again.
                self.store.prune(keys.deadlines(), deal_id, deal.version if deal else 0)
                continue
            deadline = deal.fields.get("deadline")
            if deadline and datetime.fromisoformat(deadline) > now:
                continue
            try:
                self._move(
                    deal,
                    State.ROUTING,
                    actor=SWEEPER,
                    event="deadline_missed",
                    reasons=[str(Reason.BANK_DEADLINE_MISSED)],
                    changes={
                        "bank_id": None,
                        "deadline": None,
                        "decision": {"bank_id": deal.bank_id, "decision": "expired"},
                    },
                )
                rerouted.append(deal_id)
            except VersionConflict:
                continue  # the bank decided at the last moment, or another sweep acted
        return rerouted

    def take_ready(self, count: int) -> list[str]:
        """Up to ``count`` submitted deals, oldest first, for one worker to verify."""
        return self.store.redis.lpop(keys.ready(), count) or []

    def stranded(self) -> list[tuple[str, State]]:
        """Deals whose worker-owned next step is overdue, each claimed for one stale period so
        a slow step is not re-dispatched in a tight loop. Of sweeps running at once, exactly
        one claims a given deal, and a deal that moved since it was read is left alone."""
        now = self.clock()
        again = now + timedelta(seconds=self.settings.stale_after_seconds)
        found = []
        for state in (State.SUBMITTED, State.VERIFYING, State.ROUTING, State.ON_HOLD):
            index = keys.by_state(state)
            due = self.store.due(index, now)
            for deal_id, version in zip(due, self.store.versions(due), strict=True):
                if self.store.defer(index, deal_id, version, again, if_due_by=now):
                    found.append((deal_id, state))
        return found


def _withdrawable() -> frozenset[State]:
    return sources_of(State.WITHDRAWN)
