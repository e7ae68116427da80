"""What each party may read of a deal: no internal fields, and a bank nothing after its offer."""

from __future__ import annotations

from typing import Any

from workflow.deal import Deal, rebuild
from workflow.states import State

# Stored for the workflow's own use (idempotent replays, reservation buckets), never shown.
INTERNAL_FIELDS = frozenset({"request_digest", "idempotency_key", "exposure"})
# A bank's own maker-checker steps: the bank's business, not the exporter's nor other banks'.
BANK_INTERNAL_FIELDS = frozenset(
    {"first_approval", "returned_approval", "pending_disbursement", "returned_disbursement"}
)
BANK_INTERNAL_EVENTS = frozenset(
    {"first_approval", "first_approval_returned", "disbursement_entered", "disbursement_returned"}
)


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event without the internal fields among its changes."""
    changes = event.get("set")
    hidden = INTERNAL_FIELDS | BANK_INTERNAL_FIELDS
    if not changes or not hidden & changes.keys():
        return event
    return {**event, "set": {k: v for k, v in changes.items() if k not in hidden}}


def exporter_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log as the exporter reads it: without the banks' internal maker-checker steps
    (its versions then skip those) and without internal fields."""
    return [public_event(e) for e in events if e.get("type") not in BANK_INTERNAL_EVENTS]


def _own_or_public(event: dict[str, Any], bank_id: str) -> bool:
    """Whether ``bank_id`` may see the event: every one but another bank's internal steps."""
    if event.get("type") not in BANK_INTERNAL_EVENTS:
        return True
    return str(event.get("by", "")).startswith(f"bank:{bank_id}:")


def bank_event(event: dict[str, Any], bank_id: str) -> dict[str, Any]:
    """A bank reads the log without the field changes and without other banks' identities."""
    who = event.get("by", "")
    if who.startswith("bank:") and not who.startswith(f"bank:{bank_id}:"):
        who = "bank:other"
    return {k: v for k, v in {**event, "by": who}.items() if k != "set"}


def offer_cut(events: list[dict[str, Any]], bank_id: str) -> int:
    """How many of the deal's events ``bank_id`` may see: all while it holds the deal (its
    offer is pending, or it approved), else up to the event that ended its offer."""
    offered_at = None
    for index, event in enumerate(events):
        if event["type"] == "offered_to_bank" and event.get("set", {}).get("bank_id") == bank_id:
            offered_at = index
        elif (
            offered_at is not None
            and event.get("from") == State.PENDING_BANK
            and event["to"] != State.PENDING_BANK  # a first approval keeps the offer open
        ):
            if event["to"] == State.APPROVED:
                return len(events)  # its own approval: the deal stays the bank's
            return index + 1
    return len(events) if offered_at is not None else 0


def as_seen_by_bank(
    deal: Deal, events: list[dict[str, Any]], bank_id: str
) -> tuple[Deal, list[dict[str, Any]]]:
    """The deal and its log as ``bank_id`` may see them: a bank whose offer ended sees the deal
    as it was at that moment, with its own decision, and nothing that happened later."""
    cut = offer_cut(events, bank_id)
    seen = events[:cut]
    if cut < len(events):
        deal = Deal(rebuild(seen))
    return deal, [bank_event(e, bank_id) for e in seen if _own_or_public(e, bank_id)]


def holds(deal: Deal, bank_id: str) -> bool:
    """True while the deal is the bank's: offered to it and not passed on."""
    return deal.bank_id == bank_id


__all__ = [
    "BANK_INTERNAL_EVENTS",
    "INTERNAL_FIELDS",
    "as_seen_by_bank",
    "bank_event",
    "exporter_events",
    "holds",
    "offer_cut",
    "public_event",
]
