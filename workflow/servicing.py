"""Servicing an approved deal: paying out the advance (a checker confirms a large one) and the
lapse of approvals never paid out; the repayments that follow are in ``repayments``.

The buyer limit follows the money: at disbursement the deal's reservation (its invoice total)
becomes a use of the principal paid out, the rest released in the same atomic step.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from workflow import keys
from workflow.business_days import business_date, due_score
from workflow.deal import Deal
from workflow.errors import InvalidDecision, WrongState
from workflow.interest import UPFRONT, accrue, basis_for
from workflow.money import fmt, to_cents
from workflow.officers import check_officers, officer_id
from workflow.reasons import Reason
from workflow.states import State
from workflow.steps import SWEEPER, Steps
from workflow.store import Ops, VersionConflict, epoch_seconds

SERVICED = frozenset({State.DISBURSED, State.OVERDUE})


@dataclass(frozen=True)
class Disbursement:
    officer: str
    amount: Decimal
    value_date: date
    reference: str


class Servicing(Steps):
    """Disbursement and the lapse of approvals never disbursed."""

    # --- disbursement ------------------------------------------------------------------------

    def disburse(self, deal_id: str, bank_id: str, payout: Disbursement) -> Deal:
        """Record the advance the approving bank paid out. Repeating it with the same
        reference and amount (a double click, a client retry, even racing the first) returns
        the deal as it is."""
        for _ in range(5):
            try:
                return self._disburse(deal_id, bank_id, payout)
            except VersionConflict:
                continue  # the twin request (or a sweep) landed first: look again
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _disburse(self, deal_id: str, bank_id: str, payout: Disbursement) -> Deal:
        deal = self._held_by(deal_id, bank_id)
        loan = deal.get("loan")
        if loan is not None:
            if loan.get("reference") == payout.reference and Decimal(loan["principal"]) == (
                payout.amount
            ):
                return deal
            raise WrongState(
                f"deal {deal_id} was already disbursed (reference {loan.get('reference')})",
                state=str(deal.state),
            )
        pending = deal.get("pending_disbursement")
        if pending is not None:
            if _same_payout(pending, payout):
                return deal  # the maker's double click
            raise WrongState(
                f"a disbursement of {pending['amount']} (reference {pending['reference']}) "
                f"awaits a checker on deal {deal_id}: confirm it or send it back first",
                state=str(deal.state),
            )
        self._check_payout(deal, payout)
        bank = self.reference.bank(bank_id)
        if bank is not None and bank.needs_second_approval(payout.amount):
            return self._enter_disbursement(deal, bank_id, payout)
        return self._pay_out(deal, bank_id, payout)

    def _check_payout(self, deal: Deal, payout: Disbursement) -> None:
        if deal.state != State.APPROVED:
            raise WrongState(
                f"deal {deal.id} is {deal.state}: only an approved deal is disbursed",
                state=str(deal.state),
            )
        if self.clock() >= self.lapses_at(deal, deal.bank_id or ""):
            # Lapsed, even if the sweep has not run yet: its reservation is no longer promised.
            raise WrongState(
                f"the approval of deal {deal.id} has lapsed: it was not paid out in time",
                state=str(deal.state),
            )
        approved = deal.decimal("approved_amount") or Decimal(0)
        if payout.amount <= 0 or payout.amount > approved:
            raise InvalidDecision(
                "amount", f"must be more than 0 and at most the approved {fmt(approved)}"
            )
        today = self.today()
        approved_on = self._approved_on(deal)
        due = _due_date(deal)
        if payout.value_date > today or payout.value_date < approved_on:
            raise InvalidDecision(
                "value_date", f"must be between the approval ({approved_on}) and today ({today})"
            )
        if payout.value_date >= due:
            raise InvalidDecision("value_date", f"must be before the due date {due}")

    def _pay_out(
        self, deal: Deal, bank_id: str, payout: Disbursement, checked: dict | None = None
    ) -> Deal:
        """The advance paid out: the loan's terms fixed, the reservation become its use."""
        due = _due_date(deal)
        bank = self.reference.bank(bank_id)
        mode = bank.interest_mode if bank else "at_maturity"
        basis = basis_for(deal.fields["currency"], bank.day_count if bank else None)
        rate = Decimal(deal.fields.get("annual_rate") or "0")
        upfront = Decimal("0.00")
        if mode == UPFRONT:
            upfront = accrue(payout.amount, rate, payout.value_date, due, basis)
        loan = {
            "principal": fmt(payout.amount),
            "value_date": payout.value_date.isoformat(),
            "due_date": due.isoformat(),
            "interest_mode": mode,
            "basis": basis,
            "annual_rate": str(rate),
            "upfront_interest": fmt(upfront),
            "net_paid_out": fmt(payout.amount - upfront),
            "outstanding": fmt(payout.amount),
            "accrued_interest": "0.00",
            # Interest accrues from here: the value date, or for a discounted advance (its
            # interest taken up front to the due date) from the due date on.
            "accrued_to": (due if mode == UPFRONT else payout.value_date).isoformat(),
            "principal_paid": "0.00",
            "interest_paid": fmt(upfront),
            "last_value_date": payout.value_date.isoformat(),
            "reference": payout.reference,
            "officer": payout.officer,
            **(checked or {}),
        }
        ops = Ops()
        exposure = deal.fields.get("exposure")
        if exposure:
            ops.shrink(exposure, deal.id, to_cents(payout.amount))
        policy = self.reference.policy(deal.fields["policy_no"])
        grace = policy.grace_days if policy else 0
        ops.zadd(keys.due_dates(), due_score(due + timedelta(days=grace)), deal.id)
        checker = (checked or {}).get("checker")
        return self._move(
            deal,
            State.DISBURSED,
            actor=f"bank:{bank_id}:{checker or payout.officer}",
            event="disbursed",
            changes={
                "loan": loan,
                "repayments": [],
                "due_date": due,
                "reserved_amount": payout.amount,
            },
            ops=ops,
        )

    # --- maker-checker on large disbursements -------------------------------------------------

    def _enter_disbursement(self, deal: Deal, bank_id: str, payout: Disbursement) -> Deal:
        """Record the maker's disbursement at or above the bank's second-approval amount; the
        money goes out when a different officer with the checker role confirms it."""
        maker = officer_id(payout.officer)
        score = epoch_seconds(self.lapses_at(deal, bank_id))
        ops = Ops()
        ops.zadd(keys.awaiting_check(bank_id), score, deal.id)
        ops.zadd(keys.first_approvals_by(bank_id, maker), score, deal.id)
        entered = {
            # Names this entry: a page confirms or sends back the one it showed.
            "ref": secrets.token_hex(8),
            "officer": maker,
            "amount": fmt(payout.amount),
            "value_date": payout.value_date.isoformat(),
            "reference": payout.reference,
            "at": self.clock().isoformat(),
        }
        return self._move(
            deal,
            State.APPROVED,
            actor=f"bank:{bank_id}:{payout.officer}",
            event="disbursement_entered",
            changes={"pending_disbursement": entered},
            ops=ops,
        )

    def confirm_disbursement(
        self, deal_id: str, bank_id: str, checker: str, may_check: bool, ref: str
    ) -> Deal:
        """A checker confirms the disbursement the maker entered (``ref`` names the one the
        checker saw): the advance is paid out on the maker's terms. A repeat returns the deal."""
        for _ in range(5):
            deal = self._held_by(deal_id, bank_id)
            loan = deal.get("loan")
            if loan is not None and loan.get("checked_ref") == ref:
                return deal
            pending = deal.get("pending_disbursement")
            if pending is None or pending["ref"] != ref:
                raise WrongState(
                    f"the disbursement awaiting a check on deal {deal_id} changed since your "
                    "page was loaded",
                    state=str(deal.state),
                )
            check_officers(pending["officer"], checker, may_check, deal_id)
            payout = Disbursement(
                pending["officer"],
                Decimal(pending["amount"]),
                date.fromisoformat(pending["value_date"]),
                pending["reference"],
            )
            self._check_payout(deal, payout)
            checked = {"checker": officer_id(checker), "checked_ref": ref}
            try:
                return self._pay_out(deal, bank_id, payout, checked)
            except VersionConflict:
                continue  # the twin click or a sweep landed first: look again
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def return_disbursement(
        self, deal_id: str, bank_id: str, officer: str, may_check: bool, reason: str, ref: str
    ) -> Deal:
        """The maker recalls a disbursement awaiting its check, or a checker sends it back;
        the deal stays approved, to be disbursed anew."""
        deal = self._held_by(deal_id, bank_id)
        if deal.state != State.APPROVED:
            raise WrongState(f"deal {deal_id} is {deal.state}", state=str(deal.state))
        return self._send_back(
            deal,
            bank_id,
            officer,
            may_check,
            reason,
            ref,
            "pending_disbursement",
            "returned_disbursement",
            "disbursement_returned",
        )

    def lapses_at(self, deal: Deal, bank_id: str) -> datetime:
        """When an approval given by ``bank_id`` lapses if it is not paid out: the time a
        disbursement awaiting a check must be confirmed by."""
        approved_at = deal.fields.get("approved_at") or deal.fields["updated_at"]
        return self.approval_lapse_at(bank_id, datetime.fromisoformat(approved_at))

    # --- approvals that lapse ----------------------------------------------------------------

    def lapse_approvals(self) -> list[str]:
        """Cancel every approval not disbursed within its lapse period, releasing its limit
        reservation and its invoices like the bank's own cancellation."""
        now = self.clock()
        lapsed = []
        for deal_id in self._due_entries(keys.approval_lapses(), now):
            deal = self.store.get(deal_id)
            if deal is None or deal.state != State.APPROVED:
                self.store.prune(keys.approval_lapses(), deal_id, deal.version if deal else 0)
                continue
            reasons = [str(Reason.APPROVAL_LAPSED)]
            try:
                self._move(
                    deal,
                    State.CANCELLED,
                    actor=SWEEPER,
                    event="approval_lapsed",
                    reasons=reasons,
                    changes={"reasons": reasons},
                )
                lapsed.append(deal_id)
            except VersionConflict:
                continue  # disbursed or cancelled at the last moment
        return lapsed

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _approved_on(deal: Deal) -> date:
        moment = deal.fields.get("approved_at") or deal.fields["updated_at"]
        return business_date(datetime.fromisoformat(moment))


def _due_date(deal: Deal) -> date:
    """An advance is due when the last of its invoices is."""
    return max(inv.due_date for inv in deal.application.invoices)


def _same_payout(entered: dict, payout: Disbursement) -> bool:
    return (
        entered["reference"] == payout.reference
        and Decimal(entered["amount"]) == payout.amount
        and entered["value_date"] == payout.value_date.isoformat()
    )


__all__ = ["Disbursement", "Servicing"]
