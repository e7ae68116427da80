"""The deal state table is the brief's, and the derived sets follow from it."""

from __future__ import annotations

import pytest

from workflow.states import (
    ENDED_WITHOUT_FINANCING,
    TERMINAL,
    TRANSITIONS,
    WORKER_OWNED,
    State,
    can_transition,
    sources_of,
)

S = State

# The brief's diagram, edge by edge.
BRIEF_EDGES = {
    (S.SUBMITTED, S.VERIFYING),
    (S.VERIFYING, S.REJECTED),
    (S.VERIFYING, S.ROUTING),
    (S.VERIFYING, S.ON_HOLD),
    (S.ON_HOLD, S.VERIFYING),
    (S.ROUTING, S.PENDING_BANK),
    (S.ROUTING, S.UNPLACED),
    (S.PENDING_BANK, S.APPROVED),
    (S.PENDING_BANK, S.ROUTING),
    (S.APPROVED, S.DISBURSED),
    (S.DISBURSED, S.REPAID),
    (S.DISBURSED, S.OVERDUE),
    (S.OVERDUE, S.CLAIM_FILED),
    (S.CLAIM_FILED, S.INDEMNIFIED),
    (S.CLAIM_FILED, S.CLAIM_REJECTED),
}
BEFORE_APPROVAL = {S.SUBMITTED, S.VERIFYING, S.ON_HOLD, S.ROUTING, S.PENDING_BANK}
# Allowed beyond the diagram: a late payment after an overdue still closes the deal; the
# approving bank (and only it) cancels an approval before disbursement; a deferral the insurer
# agreed to puts an overdue advance back on a due date to come.
EXTRA_EDGES = {(S.OVERDUE, S.REPAID), (S.APPROVED, S.CANCELLED), (S.OVERDUE, S.DISBURSED)}


def all_edges() -> set[tuple[State, State]]:
    return {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(State)


def test_table_is_exactly_the_briefs():
    withdrawals = {(s, S.WITHDRAWN) for s in BEFORE_APPROVAL}
    assert all_edges() == BRIEF_EDGES | withdrawals | EXTRA_EDGES


@pytest.mark.parametrize(("current", "new"), sorted(BRIEF_EDGES))
def test_brief_transitions_allowed(current, new):
    assert can_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.SUBMITTED, S.ROUTING),  # verification cannot be skipped
        (S.SUBMITTED, S.PENDING_BANK),
        (S.VERIFYING, S.PENDING_BANK),
        (S.ROUTING, S.APPROVED),  # only a bank holding the deal approves it
        (S.PENDING_BANK, S.DISBURSED),
        (S.APPROVED, S.REPAID),
        (S.APPROVED, S.WITHDRAWN),  # the bank may have paid: the exporter cannot withdraw
        (S.DISBURSED, S.WITHDRAWN),  # withdrawn not reachable from disbursed
        (S.DISBURSED, S.CANCELLED),
        (S.OVERDUE, S.WITHDRAWN),
        (S.REPAID, S.OVERDUE),
        (S.REJECTED, S.VERIFYING),
        (S.UNPLACED, S.ROUTING),
        (S.WITHDRAWN, S.SUBMITTED),
        (S.ON_HOLD, S.ROUTING),
        (S.CLAIM_REJECTED, S.CLAIM_FILED),
    ],
)
def test_illegal_transitions_refused(current, new):
    assert not can_transition(current, new)


def test_terminal_states():
    expected = {
        S.REJECTED, S.UNPLACED, S.REPAID, S.INDEMNIFIED, S.CLAIM_REJECTED, S.WITHDRAWN,
        S.CANCELLED,
    }
    assert set(TERMINAL) == expected
    for state in TERMINAL:
        assert not TRANSITIONS[state]


def test_withdrawn_reachable_exactly_before_approval():
    assert sources_of(S.WITHDRAWN) == BEFORE_APPROVAL


def test_only_an_approval_can_be_cancelled():
    assert sources_of(S.CANCELLED) == {S.APPROVED}


def test_sources_of_inverts_the_table():
    for target in State:
        assert sources_of(target) == {a for a, b in all_edges() if b == target}
    assert sources_of(S.SUBMITTED) == frozenset()


def test_every_non_terminal_state_reaches_a_terminal_one():
    for start in set(State) - TERMINAL:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & TERMINAL, start


def test_worker_owned_and_ended_without_financing():
    # A filed claim waits for the insurer's answer: a worker asks (again if a task was lost).
    assert set(WORKER_OWNED) == {S.SUBMITTED, S.VERIFYING, S.ROUTING, S.ON_HOLD, S.CLAIM_FILED}
    assert not WORKER_OWNED & TERMINAL
    assert set(ENDED_WITHOUT_FINANCING) == {S.REJECTED, S.UNPLACED, S.WITHDRAWN, S.CANCELLED}
    assert ENDED_WITHOUT_FINANCING <= TERMINAL


def test_state_values_are_the_wire_names():
    assert [str(s) for s in State] == [
        "submitted", "verifying", "on_hold", "rejected", "routing", "pending_bank", "unplaced",
        "approved", "disbursed", "repaid", "overdue", "claim_filed", "indemnified",
        "claim_rejected", "withdrawn", "cancelled",
    ]
