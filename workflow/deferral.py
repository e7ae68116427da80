"""Deferral (延期还本付息): the bank moves a disbursed advance's due date later, once or more,
with the insurer's consent; cover, interest, sweeps and the insurer's deadlines follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from workflow import keys
from workflow.business_days import days_past_due, due_score
from workflow.deal import Deal
from workflow.deferral_rules import DeferralRequest
from workflow.errors import DeferralRefused, InvalidDecision, WrongState
from workflow.states import State
from workflow.steps import Steps
from workflow.store import Ops, VersionConflict

DEFERRABLE = frozenset({State.DISBURSED, State.OVERDUE})
# What an overdue deal carries of its arrears; a deferral the insurer agreed to ends them (the
# deferral's record keeps the days past due and any notice already sent).
ARREARS_FIELDS = (
    "overdue_since",
    "notice_deadline",
    "claim_deadline",
    "missed_deadlines",
    "notice_filed_at",
    "notice_ref",
    "notice_late_days",
)


@dataclass(frozen=True)
class Deferral:
    officer: str
    new_due_date: date
    reference: str
    note: str = ""


class Deferrals(Steps):
    """The bank's deferral of an advance, refused unless the insurer's cover follows it."""

    def defer(self, deal_id: str, bank_id: str, request: Deferral) -> Deal:
        """Ask the insurer to let cover follow a new due date and, when it agrees, move the
        advance there. Raises DeferralRefused with the insurer's reasons otherwise (recorded
        on the deal). The same reference again (a double click, a retry) is the same answer."""
        for _ in range(5):
            try:
                return self._defer(deal_id, bank_id, request)
            except VersionConflict:
                continue  # a repayment or a sweep landed meanwhile: look again
        raise WrongState(f"deal {deal_id} is changing too fast; try again")

    def _defer(self, deal_id: str, bank_id: str, request: Deferral) -> Deal:
        deal = self._held_by(deal_id, bank_id)
        history = list(deal.get("deferrals", []))
        for past in history:
            if past["reference"] == request.reference:
                return _same_answer(deal, past, request)
        if deal.state not in DEFERRABLE:
            raise WrongState(
                f"deal {deal_id} is {deal.state}: only an advance paid out and not yet "
                "claimed can be deferred",
                state=str(deal.state),
            )
        loan = dict(deal.get("loan"))
        due = date.fromisoformat(loan["due_date"])
        first_due = date.fromisoformat(loan.get("first_due_date") or loan["due_date"])
        today = self.today()
        self._check_date(request.new_due_date, due, today)
        late = days_past_due(due, today)
        consent = self.insurer.consent_to_deferral(
            DeferralRequest(
                deal_id=deal.id,
                request_number=len(history) + 1,
                policy_no=deal.fields["policy_no"],
                buyer_code=deal.application.buyer.code,
                currency=deal.fields["currency"],
                outstanding=Decimal(loan["outstanding"]),
                first_due_date=first_due,
                due_date=due,
                new_due_date=request.new_due_date,
                days_past_due=late,
                deferrals_before=int(deal.fields.get("deferral_count") or 0),
                asked_on=today,
            )
        )
        record = {
            "reference": request.reference,
            "asked_on": today.isoformat(),
            "from_due_date": due.isoformat(),
            "new_due_date": request.new_due_date.isoformat(),
            "days_past_due": late,
            "granted": consent.granted,
            "insurer_ref": consent.reference,
            "reasons": list(consent.reasons),
            "officer": request.officer,
            "note": request.note,
        }
        actor = f"bank:{bank_id}:{request.officer}"
        if not consent.granted:
            self._move(
                deal,
                deal.state,
                actor=actor,
                event="deferral_refused",
                reasons=list(consent.reasons),
                changes={"deferrals": [*history, record]},
            )
            raise DeferralRefused(list(consent.reasons), request.new_due_date)
        if deal.state == State.OVERDUE:
            record["arrears"] = {f: deal.get(f) for f in ARREARS_FIELDS if deal.get(f)}
        loan.update(due_date=request.new_due_date.isoformat(), first_due_date=first_due.isoformat())
        policy = self.reference.policy(deal.fields["policy_no"])
        grace = policy.grace_days if policy else 0
        ops = Ops().zadd(
            keys.due_dates(), due_score(request.new_due_date + timedelta(days=grace)), deal.id
        )
        return self._move(
            deal,
            State.DISBURSED,
            actor=actor,
            event="deferred",
            changes={
                "loan": loan,
                "due_date": request.new_due_date,
                "deferrals": [*history, record],
                "deferral_count": int(deal.fields.get("deferral_count") or 0) + 1,
                **{f: None for f in ARREARS_FIELDS if deal.state == State.OVERDUE},
            },
            ops=ops,
        )

    def _check_date(self, new_due: date, due: date, today: date) -> None:
        if new_due <= due:
            raise InvalidDecision("new_due_date", f"must be after the current due date {due}")
        if new_due <= today:
            raise InvalidDecision("new_due_date", f"must be after today ({today})")
        latest = self.settings.deferral_latest_date
        if latest is not None and new_due > latest:
            raise InvalidDecision(
                "new_due_date",
                f"must be on or before {latest}, the latest date a deferral may reach",
            )


def _same_answer(deal: Deal, past: dict, request: Deferral) -> Deal:
    """The answer already given to this reference: the deal, or the same refusal."""
    if past["new_due_date"] != request.new_due_date.isoformat():
        raise WrongState(
            f"deferral {request.reference} was asked for {past['new_due_date']}",
            state=str(deal.state),
        )
    if not past["granted"]:
        raise DeferralRefused(past["reasons"], request.new_due_date)
    return deal


__all__ = ["Deferral", "Deferrals"]
