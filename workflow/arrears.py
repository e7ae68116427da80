"""Arrears: an advance unpaid after its due date (and the policy's grace) goes overdue, and
the insurer's deadlines that follow from the original due date are watched.

One sorted set (``keys.due_dates``) schedules each open advance's next servicing event: the
day it becomes overdue, then the notice-of-possible-loss deadline, then the claim deadline.
The sweep reads only what is due (never a scan), and each move is a compare-and-set, so
sweeps running at once, or a repayment landing meanwhile, do nothing twice.
"""

from __future__ import annotations

from datetime import date, timedelta

from workflow import keys
from workflow.business_days import day_after, due_score
from workflow.deal import Deal
from workflow.states import State
from workflow.steps import SWEEPER, Steps
from workflow.store import Ops, VersionConflict

NOTICE, CLAIM = "notice", "claim"


class Arrears(Steps):
    """The overdue sweep and the insurer's deadlines after the due date."""

    def sweep_arrears(self) -> list[str]:
        """Move each advance whose servicing event is due one step on; the ids it moved."""
        now = self.clock()
        today = self.today()
        moved = []
        for deal_id in self._due_entries(keys.due_dates(), now):
            deal = self.store.get(deal_id)
            if deal is None or deal.state not in (State.DISBURSED, State.OVERDUE):
                self.store.prune(keys.due_dates(), deal_id, deal.version if deal else 0)
                continue
            loan = deal.get("loan") or {}
            due = date.fromisoformat(loan["due_date"])
            policy = self.reference.policy(deal.fields["policy_no"])
            notice_by = due + timedelta(days=policy.notice_days if policy else 60)
            claim_by = due + timedelta(days=policy.claim_days if policy else 120)
            late_from = day_after(due + timedelta(days=policy.grace_days if policy else 0))
            if deal.state == State.DISBURSED and now < late_from:
                # The schedule was read before a deferral moved the due date on: the deal, not
                # the stale entry, says whether it is late (its entry follows it if need be).
                self.store.defer(keys.due_dates(), deal_id, deal.version, late_from, if_due_by=now)
                continue
            try:
                if deal.state == State.DISBURSED:
                    self._overdue(deal, due, notice_by, claim_by, due_score(notice_by))
                elif not self._deadline_missed(deal, today, notice_by, claim_by):
                    # Nothing missed (the bank filed in time): watch the claim deadline.
                    self.store.defer(
                        keys.due_dates(),
                        deal_id,
                        deal.version,
                        day_after(claim_by),
                        if_due_by=now,
                    )
                    continue
                moved.append(deal_id)
            except VersionConflict:
                continue  # repaid or moved by another sweep meanwhile
        return moved

    def _overdue(
        self, deal: Deal, due: date, notice_by: date, claim_by: date, next_score: float
    ) -> Deal:
        ops = Ops().zadd(keys.due_dates(), next_score, deal.id)
        return self._move(
            deal,
            State.OVERDUE,
            actor=SWEEPER,
            event="overdue",
            changes={
                "overdue_since": due + timedelta(days=1),
                "notice_deadline": notice_by,
                "claim_deadline": claim_by,
            },
            ops=ops,
        )

    def _deadline_missed(
        self, deal: Deal, today: date, notice_by: date, claim_by: date
    ) -> Deal | None:
        """Record the insurer deadline that passed without the bank's filing (the notice of
        possible loss, then the claim); the deal stays overdue and the bank keeps its claim
        rights only as the policy allows (shown on the deal)."""
        missed = list(deal.get("missed_deadlines", []))
        ops = Ops()
        if NOTICE not in missed and today > notice_by and not deal.fields.get("notice_filed_at"):
            missed.append(NOTICE)
            ops.zadd(keys.due_dates(), due_score(claim_by), deal.id)
            event = "notice_deadline_missed"
        elif CLAIM not in missed and today > claim_by:
            missed.append(CLAIM)
            ops.zrem(keys.due_dates(), deal.id)  # nothing more to watch
            event = "claim_deadline_missed"
        else:
            return None
        return self._move(
            deal,
            State.OVERDUE,
            actor=SWEEPER,
            event=event,
            changes={"missed_deadlines": missed},
            ops=ops,
        )


__all__ = ["Arrears"]
