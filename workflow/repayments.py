"""Repayments on a disbursed advance, by value date: interest first, then principal.

Interest accrues to each value date; each repayment of principal releases as much of the buyer
limit, and the deal ends ``repaid`` when principal and interest are settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from workflow.deal import Deal
from workflow.errors import InvalidDecision, WrongState
from workflow.interest import accrue
from workflow.money import fmt, quantize, to_cents
from workflow.servicing import SERVICED
from workflow.states import State
from workflow.steps import Steps
from workflow.store import Ops, VersionConflict


@dataclass(frozen=True)
class Repayment:
    officer: str
    amount: Decimal
    value_date: date
    reference: str


class Repayments(Steps):
    """Money the bank received on the advance."""

    def repay(self, deal_id: str, bank_id: str, payment: Repayment) -> Deal:
        """Record money the bank received on the advance, by value date. A repeat of a
        repayment (same reference) returns the deal as it is."""
        for _ in range(5):
            deal = self._held_by(deal_id, bank_id)
            known = [r for r in deal.get("repayments", []) if r["reference"] == payment.reference]
            if known:
                if Decimal(known[0]["amount"]) != payment.amount:
                    raise WrongState(
                        f"repayment {payment.reference} was recorded with another amount",
                        state=str(deal.state),
                    )
                return deal
            if deal.state not in SERVICED:
                raise WrongState(
                    f"deal {deal_id} is {deal.state}: repayments go on a disbursed deal",
                    state=str(deal.state),
                )
            try:
                return self._repay(deal, bank_id, payment)
            except VersionConflict:
                continue  # another repayment landed first: apply this one after it
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _repay(self, deal: Deal, bank_id: str, payment: Repayment) -> Deal:
        loan = dict(deal.get("loan"))
        today = self.today()
        last = date.fromisoformat(loan["last_value_date"])
        if payment.value_date > today or payment.value_date < last:
            raise InvalidDecision(
                "value_date",
                f"must be between the last value date on the advance ({last}) and today ({today})",
            )
        outstanding = Decimal(loan["outstanding"])
        accrued = Decimal(loan["accrued_interest"])
        accrued_to = date.fromisoformat(loan["accrued_to"])
        if payment.value_date > accrued_to:
            rate = Decimal(loan["annual_rate"])
            accrued += accrue(outstanding, rate, accrued_to, payment.value_date, loan["basis"])
            accrued_to = payment.value_date
        owed = outstanding + accrued
        if payment.amount <= 0 or payment.amount > owed:
            raise InvalidDecision(
                "amount",
                f"must be more than 0 and at most what is owed on {payment.value_date}: "
                f"{fmt(owed)} ({fmt(outstanding)} principal, {fmt(accrued)} interest)",
            )
        to_interest = min(payment.amount, accrued)
        to_principal = payment.amount - to_interest
        outstanding -= to_principal
        accrued -= to_interest
        loan.update(
            outstanding=fmt(outstanding),
            accrued_interest=fmt(accrued),
            accrued_to=accrued_to.isoformat(),
            principal_paid=fmt(Decimal(loan["principal_paid"]) + to_principal),
            interest_paid=fmt(Decimal(loan["interest_paid"]) + to_interest),
            last_value_date=payment.value_date.isoformat(),
        )
        record = {
            "reference": payment.reference,
            "value_date": payment.value_date.isoformat(),
            "amount": fmt(payment.amount),
            "interest": fmt(to_interest),
            "principal": fmt(to_principal),
            "officer": payment.officer,
        }
        settled = outstanding == 0 and accrued == 0
        ops = Ops()
        exposure = deal.fields.get("exposure")
        if exposure and not settled:
            ops.shrink(exposure, deal.id, to_cents(outstanding))
        return self._move(
            deal,
            State.REPAID if settled else deal.state,
            actor=f"bank:{bank_id}:{payment.officer}",
            event="repaid" if settled else "repayment",
            changes={
                "loan": loan,
                "repayments": [*deal.get("repayments", []), record],
                "reserved_amount": quantize(outstanding),
            },
            ops=ops,
        )


__all__ = ["Repayment", "Repayments"]
