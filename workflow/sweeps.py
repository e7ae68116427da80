"""The sweeps: missed bank deadlines, the submission drain, stranded deals."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflow import keys
from workflow.reasons import Reason
from workflow.states import State
from workflow.steps import SWEEPER, Steps
from workflow.store import (
    Ops,
    VersionConflict,
    epoch_seconds,
)


def ready_entry(deal_id: str, request_id: str | None) -> str:
    """A ready-queue entry: the deal id, and after a space the id of the request that
    submitted it (internal: the queue is never shown to anyone)."""
    return f"{deal_id} {request_id}" if request_id else deal_id


def ready_entry_parts(entry: str) -> tuple[str, str | None]:
    deal_id, _, request_id = entry.partition(" ")
    return deal_id, request_id or None


class Sweeps(Steps):
    """Deadlines missed, deals ready for verification, worker steps overdue."""

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
            ops = Ops()
            if deal.bank_id and deadline:
                missed_at = epoch_seconds(datetime.fromisoformat(deadline))
                ops.zadd(keys.bank_missed(deal.bank_id), missed_at, deal.id)
            try:
                self._move(
                    deal,
                    State.ROUTING,
                    actor=SWEEPER,
                    event="deadline_missed",
                    ops=ops,
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
        return [deal_id for deal_id, _ in self.take_ready_entries(count)]

    def take_ready_entries(self, count: int) -> list[tuple[str, str | None]]:
        """Like :meth:`take_ready`, each deal with the request id that submitted it (if any),
        so the drain's log lines about it carry that request's id."""
        entries = self.store.redis.lpop(keys.ready(), count) or []
        return [ready_entry_parts(entry) for entry in entries]

    def stranded(self) -> list[tuple[str, State]]:
        """Deals whose worker-owned next step is overdue, each claimed for one stale period so
        a slow step is not re-dispatched in a tight loop. Of sweeps running at once, exactly
        one claims a given deal, and a deal that moved since it was read is left alone."""
        now = self.clock()
        again = now + timedelta(seconds=self.settings.stale_after_seconds)
        found = []
        for state in (
            State.SUBMITTED,
            State.VERIFYING,
            State.ROUTING,
            State.ON_HOLD,
            State.CLAIM_FILED,
        ):
            index = keys.by_state(state)
            due = self.store.due(index, now)
            for deal_id, version in zip(due, self.store.versions(due), strict=True):
                if self.store.defer(index, deal_id, version, again, if_due_by=now):
                    found.append((deal_id, state))
        return found
