"""Ending a deal on request: the exporter's withdrawal, the approving bank's cancellation."""

from __future__ import annotations

from workflow.deal import Deal
from workflow.errors import AlreadyApproved, DealNotFound, WrongState
from workflow.reasons import Reason
from workflow.states import TERMINAL, State, sources_of
from workflow.steps import Steps
from workflow.store import VersionConflict


class Withdrawals(Steps):
    """The exporter withdraws an application; the approving bank cancels its approval."""

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



def _withdrawable() -> frozenset[State]:
    return sources_of(State.WITHDRAWN)
