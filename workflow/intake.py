"""Intake and verification: submit an application, check its cover, reserve the limit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflow import keys
from workflow.checks import (
    LIMIT_ROOM_CHECK,
    NO_CUSTOMS,
    CustomsFacts,
    verify_cover,
    whitelist_status,
)
from workflow.deal import Application, Deal, application_fields
from workflow.errors import (
    DuplicateReceivable,
    IdempotencyKeyReused,
)
from workflow.logs import bound, current_request_id
from workflow.money import from_cents, quantize, to_cents
from workflow.reasons import Reason
from workflow.reference import CoverFacts
from workflow.reference.cache import ReferenceView
from workflow.states import State
from workflow.steps import WORKER, Chain, Steps, log
from workflow.store import (
    LimitExhausted,
    Locked,
    Ops,
    StoreError,
    VersionConflict,
    epoch_seconds,
)
from workflow.sweeps import ready_entry

# A ready-queue entry as the drain takes it: the deal id and the submitting request's id.
ReadyEntry = tuple[str, str | None]

# A trade document's kind in the English of the API's messages.
DOCUMENT_WORDS = {"bill_of_lading": "bill of lading", "customs_declaration": "customs declaration"}


# How long the "a drain is queued" flag lives: a drain message that is lost only delays the
# next one this long (tasks/pipeline.py, which also sets it outside a submission).
DRAIN_FLAG_SECONDS = 10


@dataclass(frozen=True)
class Submitted:
    deal: Deal
    replayed: bool
    # True when this submission queued the drain flag (in its own atomic step), so the caller
    # must publish the drain (tasks.pipeline.publish_drain); False when one is already queued.
    drain_due: bool = False


def new_deal_id() -> str:
    # 80 random bits: unguessable, and short enough to keep index entries small.
    return secrets.token_hex(10)


class Intake(Steps):
    """Submit, verify (cover, whitelist, reservation), hold while the insurer is away."""

    # --- submit ------------------------------------------------------------------------------

    def submit(
        self,
        app: Application,
        idempotency_key: str | None = None,
        guard: tuple[str, str] | None = None,
    ) -> Submitted:
        """Commit a new deal; raises DuplicateReceivable or IdempotencyKeyReused. ``guard``,
        a key and the value it must still hold (the record of the API token the submission
        was authenticated by), is checked in the same atomic step, before any write:
        ExpectationFailed if it changed, and nothing is written."""
        now = self.clock()
        deal_id = new_deal_id()
        ops = Ops()
        if guard:
            ops.expect(*guard)
        if idempotency_key:
            idem_key = keys.idempotency(app.exporter_uscc, idempotency_key)
            ops.lock(idem_key, deal_id, self.settings.idempotency_ttl_seconds)
        receivables = {
            keys.receivable(app.exporter_uscc, app.buyer.code, inv.number): inv.number
            for inv in app.invoices
        }
        for key in receivables:
            ops.lock(key, deal_id)
        # A bill of lading or customs declaration is locked whoever the exporter: the same
        # goods are financed once. Taken in the same atomic step as the invoices.
        documents = app.document_locks()
        for key in documents:
            ops.lock(key, deal_id)
        ops.zadd(keys.by_exporter(app.exporter_uscc), epoch_seconds(now), deal_id)
        ops.rpush(keys.ready(), ready_entry(deal_id, current_request_id()))
        # The drain flag goes in the same script: no SET NX round trip of its own per deal.
        ops.flag(keys.drain_scheduled(), DRAIN_FLAG_SECONDS)
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
            # Whether the first attempt set the drain flag is unknown: publish one anyway (a
            # drain with nothing to do costs one message; a missed one would delay the deal).
            return Submitted(deal, replayed=False, drain_due=True)
        except Locked as exc:
            if idempotency_key and exc.key == keys.idempotency(app.exporter_uscc, idempotency_key):
                existing = self.store.get(exc.holder)
                if existing and existing.fields.get("request_digest") == app.fingerprint():
                    return Submitted(existing, replayed=True)
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used for a different request", deal_id=exc.holder
                ) from exc
            if exc.key in documents:
                raise self._duplicate_document(app, documents[exc.key], exc.holder) from exc
            invoice = receivables.get(exc.key, "?")
            raise DuplicateReceivable(
                f"invoice {invoice} is already in a live deal", invoice=invoice, deal_id=exc.holder
            ) from exc
        log.info("deal %s submitted", deal_id, extra={"deal_id": deal_id, "event": "submitted"})
        return Submitted(deal, replayed=False, drain_due=ops.flagged)

    def _duplicate_document(
        self, app: Application, document: tuple[str, str, str], holder: str
    ) -> DuplicateReceivable:
        """The refusal of a trade document already in a live deal. The holding deal is named
        only when it is the applicant's own: another exporter's deal id is none of theirs."""
        kind, number, invoice = document
        words = DOCUMENT_WORDS[kind]
        details: dict[str, str] = {"document": kind, "number": number, "invoice": invoice}
        held = self.store.get(holder)
        if held is not None and held.fields.get("exporter_uscc") == app.exporter_uscc:
            details["deal_id"] = holder
        return DuplicateReceivable(
            f"{words} {number} (invoice {invoice}) is already in a live deal", **details
        )

    # --- verify ------------------------------------------------------------------------------

    def verify(self, deal_id: str) -> Deal | None:
        """Check cover and whitelist; reserve the limit; then route. Safe to run any number of
        times: it only acts on a deal in submitted, on_hold, verifying or routing.

        The moves commit as one chain (one script call, one fsync): the claim, the verdict
        and the offer. Only when the check asks a remote insurer does the claim commit first,
        so the deal shows it is being verified while the worker waits."""
        local = getattr(self.insurer, "cover_facts_at", None) is not None
        chained = True
        # A remote insurer's answer, kept when a chain is refused for the limit's room: the
        # rejection is decided on the answer already given, not on a second call. (The local
        # one answers again from the reference data of the version just read.)
        answers: dict[str, CoverFacts] | None = None if local else {}
        for _ in range(5):
            deal, reference = self._read_with_reference(deal_id)
            if deal is None:
                log.warning("verify: no deal %s", deal_id, extra={"deal_id": deal_id})
                return None
            if deal.state == State.ON_HOLD and not self._hold_over(deal):
                return deal  # a stray retry: the hold ends when its time comes, not before
            chain = Chain(deal) if chained else None
            try:
                deal, chain = self._stage_verification(deal, reference, chain, local, answers)
                return self._commit(chain) if chain is not None and chain.moves else deal
            except VersionConflict:
                if answers is not None:
                    answers.clear()  # moved meanwhile: a check from where it is now asks again
                continue  # someone else moved it: re-read and carry on from where it is now
            except LimitExhausted:
                # Another deal took the limit's room since it was read: the rejection (with
                # the room left) is decided move by move, on the same answer.
                chained = False
        return self.store.get(deal_id)

    def verify_many(self, entries: list[ReadyEntry]) -> list[ReadyEntry]:
        """Verify a batch of submitted deals (the drain's ready entries) against the local
        insurer: the deals and the reference version in one round trip, every invoice's
        declaration in one more, then each deal's chain (claim, verdict, offer) in one
        pipeline, each chain atomic on its own. Returns the entries left for :meth:`verify`
        one by one: a deal no longer ``submitted``, a refused chain (moved meanwhile, a limit
        taken by another deal), a check that failed, or all of them with a remote insurer."""
        if not entries or getattr(self.insurer, "cover_facts_at", None) is None:
            return entries
        deals, version = self.store.get_many_with(
            [deal_id for deal_id, _ in entries], keys.reference_version()
        )
        reference = self._reference_at(version)
        rest, batch = [], []
        for entry, deal in zip(entries, deals, strict=True):
            if deal is None or deal.state != State.SUBMITTED:
                rest.append(entry)
            else:
                batch.append((entry, deal))
        reference.read_declarations(
            [(d.application.policy_no, d.application.buyer.code,
              [inv.number for inv in d.application.invoices]) for _, d in batch]
        )
        chains = []
        for entry, deal in batch:
            with bound(deal_id=entry[0], request_id=entry[1]):
                try:
                    _, chain = self._stage_verification(deal, reference, Chain(deal), True)
                    chains.append((entry, chain))
                except Exception:  # noqa: BLE001 - verify() alone tries it again and reports
                    rest.append(entry)
        outcomes = self.store.transitions_many([(c.start, c.moves) for _, c in chains])
        for (entry, chain), outcome in zip(chains, outcomes, strict=True):
            if isinstance(outcome, StoreError):
                rest.append(entry)
            else:
                with bound(deal_id=entry[0], request_id=entry[1]):
                    chain.log()
        return rest

    def _stage_verification(
        self,
        deal: Deal,
        reference: ReferenceView,
        chain: Chain | None,
        local: bool,
        answers: dict[str, CoverFacts] | None = None,
    ) -> tuple[Deal, Chain | None]:
        """The claim, the verdict and the offer from wherever ``deal`` is, staged on ``chain``
        (None: each committed at once); with a remote insurer the claim commits at once and
        the chain starts after it. The deal as the last move leaves it, and the chain."""
        if deal.state in (State.SUBMITTED, State.ON_HOLD):
            deal = self._move(
                deal,
                State.VERIFYING,
                actor=WORKER,
                event="verification_started",
                chain=chain if local else None,
            )
            if chain is not None and not local:
                chain = Chain(deal)
        if deal.state == State.VERIFYING:
            deal = self._check(deal, reference, chain, answers)
        if deal.state == State.ROUTING:
            deal = self._route(deal, reference, chain)
        return deal, chain

    def _check(
        self,
        deal: Deal,
        reference: ReferenceView,
        chain: Chain | None = None,
        answers: dict[str, CoverFacts] | None = None,
    ) -> Deal:
        app = deal.application
        today = self.clock().date()
        facts = answers.get("cover") if answers is not None else None
        if facts is None:
            # The local insurer answers from the reference data, cached for this version.
            cover_at = getattr(self.insurer, "cover_facts_at", None)
            facts = cover_at(app, reference) if cover_at else self.insurer.cover_facts(app)
            if answers is not None:
                answers["cover"] = facts
        customs = self._customs_facts(app)
        verdict = verify_cover(app, facts, today, customs)
        whitelist = whitelist_status(reference.whitelists_of(app.exporter_uscc), today)
        # Only failures are stored; check_results() derives the full table from them.
        changes = {"failures": verdict.failures, "whitelist": whitelist.to_wire()}
        if not customs.required and any(i.customs_declaration for i in app.invoices):
            changes["customs_unchecked"] = "1"  # the feed is not in use: shown "not run"
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
                chain=chain,
            )
        limit = verdict.limit
        assert limit is not None  # a passed verdict has found a limit
        policy = facts.policy
        assert policy is not None
        insured = quantize(app.invoice_total * policy.coverage_ratio)
        reserve = Ops().reserve(
            limit.exposure, deal.id, to_cents(app.invoice_total), to_cents(limit.amount)
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
                    "exposure": limit.exposure,
                    "reserved_amount": app.invoice_total,
                    "insured_amount": insured,
                    "coverage_ratio": str(policy.coverage_ratio),
                    "max_credit_days": policy.max_credit_days,
                },
                ops=reserve,
                chain=chain,
            )
        except LimitExhausted:
            room = from_cents(
                max(to_cents(limit.amount) - self.store.reserved_cents(limit.exposure), 0)
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

    def _customs_facts(self, app: Application) -> CustomsFacts:
        """The customs records of the declarations the invoices name (settings.customs_check
        decides whether a missing one is refused; docs/trade-documents.md)."""
        numbers = sorted({i.customs_declaration for i in app.invoices if i.customs_declaration})
        mode = self.settings.customs_check
        if not numbers or mode == "off":
            return NO_CUSTOMS
        required = mode == "on" or self.reference.customs_feed_loaded()
        return CustomsFacts(
            self.reference.customs_records(numbers), required, self.settings.customs_tolerance
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
