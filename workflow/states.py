"""The deal's states and the one table of transitions every part of Xinbao obeys."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SUBMITTED = "submitted"
    VERIFYING = "verifying"
    ON_HOLD = "on_hold"
    REJECTED = "rejected"
    ROUTING = "routing"
    PENDING_BANK = "pending_bank"
    UNPLACED = "unplaced"
    APPROVED = "approved"
    DISBURSED = "disbursed"
    REPAID = "repaid"
    OVERDUE = "overdue"
    CLAIM_FILED = "claim_filed"
    INDEMNIFIED = "indemnified"
    CLAIM_REJECTED = "claim_rejected"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"


S = State

# from-state -> the states it may move to. Nothing else is a legal transition.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.SUBMITTED:    frozenset({S.VERIFYING, S.WITHDRAWN}),
    S.VERIFYING:    frozenset({S.ROUTING, S.REJECTED, S.ON_HOLD, S.WITHDRAWN}),
    S.ON_HOLD:      frozenset({S.VERIFYING, S.WITHDRAWN}),
    S.ROUTING:      frozenset({S.PENDING_BANK, S.UNPLACED, S.WITHDRAWN}),
    S.PENDING_BANK: frozenset({S.APPROVED, S.ROUTING, S.WITHDRAWN}),
    # After approval the exporter can no longer withdraw (the bank may already have paid):
    # only the approving bank can cancel its approval.
    S.APPROVED:     frozenset({S.DISBURSED, S.CANCELLED}),
    S.DISBURSED:    frozenset({S.REPAID, S.OVERDUE}),
    # A deferral the insurer agreed to puts an overdue advance back on a due date to come.
    S.OVERDUE:      frozenset({S.REPAID, S.CLAIM_FILED, S.DISBURSED}),
    S.CLAIM_FILED:  frozenset({S.INDEMNIFIED, S.CLAIM_REJECTED}),
    S.REJECTED:     frozenset(),
    S.UNPLACED:     frozenset(),
    S.REPAID:       frozenset(),
    S.INDEMNIFIED:  frozenset(),
    S.CLAIM_REJECTED: frozenset(),
    S.WITHDRAWN:    frozenset(),
    S.CANCELLED:    frozenset(),
}  # fmt: skip

TERMINAL: frozenset[State] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# States whose next step belongs to a worker: the sweeper re-dispatches them when overdue.
WORKER_OWNED: frozenset[State] = frozenset(
    {S.SUBMITTED, S.VERIFYING, S.ROUTING, S.ON_HOLD, S.CLAIM_FILED}
)

# Terminal states in which the buyer-limit reservation and the receivable lock are released.
ENDED_WITHOUT_FINANCING: frozenset[State] = frozenset(
    {S.REJECTED, S.UNPLACED, S.WITHDRAWN, S.CANCELLED}
)


def can_transition(current: State, new: State) -> bool:
    return new in TRANSITIONS[current]


def sources_of(new: State) -> frozenset[State]:
    """Every state from which ``new`` may be entered."""
    return frozenset(s for s, nxt in TRANSITIONS.items() if new in nxt)
