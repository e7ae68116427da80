"""Claims under the assigned indemnity (赔款转让): the notice of possible loss, the claim, the
insurer's answer (``indemnified`` or ``claim_rejected``) and recoveries after indemnity.

The insurer is asked through the gateway; the local gateway decides by the documented rules of
:class:`LocalClaimRules` so the whole path runs without an insurer API.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from workflow.claim_rules import ClaimFiling
from workflow.deal import Deal
from workflow.errors import InvalidDecision, WrongState
from workflow.money import fmt, quantize
from workflow.states import State
from workflow.steps import WORKER, Steps
from workflow.store import VersionConflict


class Claims(Steps):
    """Notice, claim, the insurer's decision, recoveries."""

    def file_notice(self, deal_id: str, bank_id: str, officer: str) -> Deal:
        """The bank tells the insurer of a possible loss on an overdue advance (idempotent:
        a repeat, even racing the first, returns the deal with the one notice)."""
        for _ in range(5):
            try:
                return self._file_notice(deal_id, bank_id, officer)
            except VersionConflict:
                continue  # the twin request or the sweep landed first: look again
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _file_notice(self, deal_id: str, bank_id: str, officer: str) -> Deal:
        deal = self._held_by(deal_id, bank_id)
        if deal.fields.get("notice_filed_at"):
            return deal
        if deal.state != State.OVERDUE:
            raise WrongState(
                f"deal {deal_id} is {deal.state}: a notice of possible loss follows an overdue",
                state=str(deal.state),
            )
        today = self.today()
        deadline = date.fromisoformat(deal.fields["notice_deadline"])
        ack = self.insurer.notify_possible_loss(deal.id, deal.fields["policy_no"], today)
        return self._move(
            deal,
            State.OVERDUE,
            actor=f"bank:{bank_id}:{officer}",
            event="notice_filed",
            changes={
                "notice_filed_at": today,
                "notice_ref": ack,
                "notice_late_days": max((today - deadline).days, 0),
            },
        )

    def file_claim(
        self, deal_id: str, bank_id: str, officer: str, loss: Decimal, documents: list[str]
    ) -> Deal:
        """The bank claims the loss; the insurer's answer comes by ``settle_claim``. The same
        claim again returns the deal; a claim of another loss is refused."""
        for _ in range(5):
            try:
                return self._file_claim(deal_id, bank_id, officer, loss, documents)
            except VersionConflict:
                continue  # the twin request landed first: look again
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _file_claim(
        self, deal_id: str, bank_id: str, officer: str, loss: Decimal, documents: list[str]
    ) -> Deal:
        deal = self._held_by(deal_id, bank_id)
        filed = deal.get("claim")
        if filed:
            if Decimal(filed["loss_amount"]) != loss:
                raise WrongState(
                    f"a claim of {filed['loss_amount']} was already filed on deal {deal_id}",
                    state=str(deal.state),
                )
            return deal
        if deal.state != State.OVERDUE or not deal.fields.get("notice_filed_at"):
            raise WrongState(
                f"deal {deal_id}: a claim follows the notice of possible loss on an overdue",
                state=str(deal.state),
            )
        total = deal.decimal("invoice_total") or Decimal(0)
        if loss <= 0 or loss > total:
            raise InvalidDecision("loss_amount", f"must be more than 0 and at most {fmt(total)}")
        if not documents:
            raise InvalidDecision("documents", "list the documents sent with the claim")
        claim = {
            "loss_amount": fmt(loss),
            "documents": list(documents),
            "filed_on": self.today().isoformat(),
            "officer": officer,
        }
        return self._move(
            deal,
            State.CLAIM_FILED,
            actor=f"bank:{bank_id}:{officer}",
            event="claim_filed",
            changes={"claim": claim},
        )

    def settle_claim(self, deal_id: str) -> Deal | None:
        """Ask the insurer for its decision on a filed claim and record it (idempotent)."""
        deal = self.store.get(deal_id)
        if deal is None or deal.state != State.CLAIM_FILED:
            return deal
        decision = self.insurer.decide_claim(self._filing(deal))
        if decision is None:
            return deal  # the insurer has not decided yet: the sweeper asks again later
        record = {
            "paid": decision.paid,
            "covered_loss": fmt(decision.covered_loss),
            "indemnity": fmt(decision.indemnity),
            "reasons": list(decision.reasons),
            "decided_on": self.today().isoformat(),
        }
        try:
            return self._move(
                deal,
                State.INDEMNIFIED if decision.paid else State.CLAIM_REJECTED,
                actor=WORKER,
                event="indemnified" if decision.paid else "claim_rejected",
                reasons=list(decision.reasons),
                changes={"claim_decision": record, "recoveries": []},
            )
        except VersionConflict:
            return self.store.get(deal_id)

    def record_recovery(
        self, deal_id: str, bank_id: str, officer: str, amount: Decimal, reference: str
    ) -> Deal:
        """Money recovered from the buyer after indemnity, shared between the insurer and the
        bank in proportion to the loss each bore (indemnity vs covered loss less indemnity)."""
        for _ in range(5):
            deal = self._held_by(deal_id, bank_id)
            if deal.state != State.INDEMNIFIED:
                raise WrongState(
                    f"deal {deal_id} is {deal.state}: recoveries follow an indemnity",
                    state=str(deal.state),
                )
            recoveries = list(deal.get("recoveries", []))
            known = [r for r in recoveries if r["reference"] == reference]
            if known:
                if Decimal(known[0]["amount"]) != amount:
                    # Like repayments: the same reference is the same money, or a mistake.
                    raise WrongState(
                        f"recovery {reference} was recorded with another amount",
                        state=str(deal.state),
                    )
                return deal
            decided = deal.get("claim_decision")
            covered, indemnity = Decimal(decided["covered_loss"]), Decimal(decided["indemnity"])
            recovered = sum(Decimal(r["amount"]) for r in recoveries)
            if amount <= 0 or recovered + amount > covered:
                raise InvalidDecision(
                    "amount", f"must be more than 0; recoveries total at most {fmt(covered)}"
                )
            # Shares of the running total, so recoveries in parts share as one would.
            shared = sum(Decimal(r["to_insurer"]) for r in recoveries)
            insurer = (
                quantize((recovered + amount) * indemnity / covered) - shared
                if covered
                else Decimal(0)
            )
            recoveries.append(
                {
                    "reference": reference,
                    "amount": fmt(amount),
                    "to_insurer": fmt(insurer),
                    "to_bank": fmt(amount - insurer),
                    "on": self.today().isoformat(),
                    "officer": officer,
                }
            )
            try:
                return self._move(
                    deal,
                    State.INDEMNIFIED,
                    actor=f"bank:{bank_id}:{officer}",
                    event="recovery",
                    changes={"recoveries": recoveries},
                )
            except VersionConflict:
                continue
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _filing(self, deal: Deal) -> ClaimFiling:
        claim = deal.get("claim")
        app = deal.application
        # The cap is the receivable insured when the deal was verified (its whole invoice
        # total fitted the limit then: a later limit cut does not reach back), less what has
        # been paid on it since (every repayment recorded on the advance).
        paid = sum((Decimal(r["amount"]) for r in deal.get("repayments", [])), Decimal(0))
        total = (deal.decimal("invoice_total") or Decimal(0)) - paid
        notice_deadline = date.fromisoformat(deal.fields["notice_deadline"])
        return ClaimFiling(
            deal_id=deal.id,
            policy_no=app.policy_no,
            buyer_code=app.buyer.code,
            currency=app.currency,
            loss_amount=Decimal(claim["loss_amount"]),
            documents=tuple(claim["documents"]),
            filed_on=date.fromisoformat(claim["filed_on"]),
            notice_filed_on=date.fromisoformat(deal.fields["notice_filed_at"]),
            notice_deadline=notice_deadline,
            claim_deadline=date.fromisoformat(deal.fields["claim_deadline"]),
            coverage_ratio=Decimal(deal.fields.get("coverage_ratio") or "0"),
            insured_cap=max(total, Decimal(0)),
        )

__all__ = ["Claims"]
