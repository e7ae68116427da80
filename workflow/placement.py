"""Placement: offer a deal to one bank at a time, and the bank's decision."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from workflow import keys
from workflow.checks import cover_still_in_force
from workflow.deal import Deal
from workflow.errors import (
    CoverLapsed,
    InvalidDecision,
    WrongState,
)
from workflow.money import quantize
from workflow.officers import check_officers, officer_id
from workflow.reasons import Reason
from workflow.reference.cache import ReferenceView
from workflow.routing import RoutingInput, next_offer
from workflow.states import State
from workflow.steps import WORKER, Chain, Steps
from workflow.store import (
    Ops,
    VersionConflict,
    epoch_seconds,
)


@dataclass(frozen=True)
class Decision:
    approve: bool
    officer: str
    amount: Decimal | None = None
    annual_rate: Decimal | None = None
    reason: str | None = None
    # Whether the officer holds the checker role (the caller knows who is signed in).
    may_check: bool = False
    # The first approval (its "ref") an approval means to confirm; "" = it expects none. A
    # page's form says which it was shown, so a form read before a first approval came or
    # went is refused as stale instead of approving other terms. None = no expectation.
    confirms: str | None = None


class Placement(Steps):
    """Routing and the bank decision (withdrawals and cancellations: workflow.withdrawal)."""

    # --- route -------------------------------------------------------------------------------

    def route(self, deal_id: str) -> Deal | None:
        """Offer a deal in ``routing`` to the next eligible bank, or end it ``unplaced``."""
        for _ in range(5):
            deal, reference = self._read_with_reference(deal_id)
            if deal is None or deal.state != State.ROUTING:
                return deal
            try:
                return self._route(deal, reference)
            except VersionConflict:
                continue
        return self.store.get(deal_id)

    def _route(self, deal: Deal, reference: ReferenceView, chain: Chain | None = None) -> Deal:
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
            trade_documents=app.has_trade_documents,
        )
        offered = deal.offered_banks
        offer, passed_over = next_offer(reference.banks(), routing_input, offered)
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
                chain=chain,
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
            chain=chain,
        )

    # --- bank decision -----------------------------------------------------------------------

    def decide(self, deal_id: str, bank_id: str, decision: Decision) -> Deal:
        """A bank's approve or decline of a deal it holds. Raises DealNotFound / WrongState.

        Maker-checker: an approval at or above the bank's ``second_approval_above`` is first
        recorded (the deal stays pending); a second, different officer with the checker role
        then confirms it on the same terms, which approves the deal."""
        deal = self._pending_at(deal_id, bank_id)
        actor = f"bank:{bank_id}:{decision.officer}"
        first = deal.get("first_approval")
        try:
            if not decision.approve:
                record = {
                    "bank_id": bank_id,
                    "officer": decision.officer,
                    "decision": "decline",
                    "reason": decision.reason or "",
                }
                return self._move(
                    deal,
                    State.ROUTING,
                    actor=actor,
                    event="declined",
                    reasons=[str(Reason.BANK_DECLINED)],
                    changes={"decision": record, "bank_id": None, "deadline": None},
                )
            if decision.confirms is not None and (first or {}).get("ref", "") != decision.confirms:
                raise WrongState(
                    f"the first approval of deal {deal_id} changed since your page was loaded",
                    state=str(deal.state),
                )
            self._cover_in_force(deal)
            if first is not None:
                return self._second_approval(deal, bank_id, decision, first)
            amount, rate = self._terms(deal, decision)
            bank = self.reference.bank(bank_id)
            if bank is not None and bank.needs_second_approval(amount):
                return self._first_approval(
                    deal, bank_id, officer_id(decision.officer), amount, rate
                )
            return self._approve(deal, bank_id, actor, decision.officer, amount, rate)
        except VersionConflict as exc:
            raise WrongState(
                f"deal {deal_id} changed while you decided; reload it", state=exc.state
            ) from exc

    def _terms(self, deal: Deal, decision: Decision) -> tuple[Decimal, Decimal]:
        """The amount and rate an approval asks for, checked against what was offered."""
        offered = deal.decimal("eligible_amount") or Decimal(0)
        amount = decision.amount if decision.amount is not None else offered
        if amount <= 0 or amount > offered:
            raise InvalidDecision(
                "amount", f"must be more than 0 and at most the financeable {offered}"
            )
        rate = decision.annual_rate
        if rate is None:
            rate = Decimal(deal.get("pricing", {}).get("annual_rate", "0"))
        return quantize(amount), rate

    def _approve(
        self,
        deal: Deal,
        bank_id: str,
        actor: str,
        officer: str,
        amount: Decimal,
        rate: Decimal,
        checker: str | None = None,
    ) -> Deal:
        record = {
            "bank_id": bank_id,
            "officer": officer,
            "decision": "approve",
            "amount": str(amount),
            "annual_rate": str(rate),
            **({"checker": checker} if checker else {}),
        }
        now = self.clock()
        ops = Ops().zadd(
            keys.approval_lapses(), epoch_seconds(self.approval_lapse_at(bank_id, now)), deal.id
        )
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
                "approved_at": now,
            },
            ops=ops,
        )

    def _first_approval(
        self, deal: Deal, bank_id: str, officer: str, amount: Decimal, rate: Decimal
    ) -> Deal:
        """Record the maker's approval; the deal stays pending at the bank for a checker,
        within the same decision deadline."""
        deadline = datetime.fromisoformat(deal.fields["deadline"])
        score = epoch_seconds(deadline)
        ops = Ops()
        ops.zadd(keys.awaiting_check(bank_id), score, deal.id)
        ops.zadd(keys.first_approvals_by(bank_id, officer), score, deal.id)
        first = {
            # Names this first approval: a page confirms or sends back the one it showed.
            "ref": secrets.token_hex(8),
            "officer": officer,
            "amount": str(amount),
            "annual_rate": str(rate),
            "at": self.clock().isoformat(),
        }
        return self._move(
            deal,
            State.PENDING_BANK,
            actor=f"bank:{bank_id}:{officer}",
            event="first_approval",
            due=deadline,
            changes={"first_approval": first},
            ops=ops,
        )

    def _second_approval(self, deal: Deal, bank_id: str, decision: Decision, first: dict) -> Deal:
        """The checker's confirmation of a first approval, on the maker's terms."""
        check_officers(first["officer"], decision.officer, decision.may_check, deal.id)
        checker = officer_id(decision.officer)
        amount, rate = Decimal(first["amount"]), Decimal(first["annual_rate"])
        for name, given, agreed in (
            ("amount", decision.amount, amount),
            ("annual_rate", decision.annual_rate, rate),
        ):
            if given is not None and given != agreed:
                raise InvalidDecision(
                    name,
                    f"a checker confirms the first approval as it stands ({agreed}); send it "
                    "back to the maker to change it",
                )
        return self._approve(
            deal,
            bank_id,
            f"bank:{bank_id}:{decision.officer}",
            first["officer"],
            amount,
            rate,
            checker=checker,
        )

    def return_approval(
        self,
        deal_id: str,
        bank_id: str,
        officer: str,
        may_check: bool,
        reason: str,
        first_ref: str | None = None,
    ) -> Deal:
        """Undo a first approval: the maker recalls it, or a checker sends it back. The deal
        stays pending at the bank for a new decision. ``first_ref`` names the first approval
        the officer saw; another one is not sent back."""
        deal = self._pending_at(deal_id, bank_id)
        deadline = datetime.fromisoformat(deal.fields["deadline"])
        return self._send_back(
            deal,
            bank_id,
            officer,
            may_check,
            reason,
            first_ref,
            "first_approval",
            "returned_approval",
            "first_approval_returned",
            due=deadline,
        )

    def _pending_at(self, deal_id: str, bank_id: str) -> Deal:
        """The deal if it is pending ``bank_id``'s decision with its deadline not passed."""
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
        return deal

    def _cover_in_force(self, deal: Deal) -> None:
        """Refuse an approval once the insurer has withdrawn the cover the deal was verified
        against: the policy cancelled or suspended, or no limit of the deal's exposure in
        force (a limit re-issued under a new id still covers it)."""
        exposure = deal.fields.get("exposure")
        if not exposure:
            return
        facts = self.insurer.cover_facts(deal.application)
        reason = cover_still_in_force(facts, exposure, self.clock().date())
        if reason is not None:
            raise CoverLapsed(
                f"the insurer's cover this deal was verified against has gone ({reason}); "
                "decline the deal",
                reason,
            )
