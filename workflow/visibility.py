"""What each party may read of a deal: no internal fields, and a bank nothing after its offer."""

from __future__ import annotations

import json
from typing import Any

from workflow.deal import Deal, encode_fields, rebuild
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


# In the records the exporter reads (the decision, the loan, repayments, the claim, recoveries,
# deferrals): the bank's officers, its own references, its check of a payout and its notes.
BANK_RECORD_FIELDS = frozenset({"officer", "reference", "checker", "checked_ref", "note"})
BANK_RECORDS = frozenset({"decision", "loan", "repayments", "claim", "recoveries", "deferrals"})


def without_bank_fields(record: Any) -> Any:
    """A record (or a list of them) without the bank's own fields."""
    if isinstance(record, list):
        return [without_bank_fields(item) for item in record]
    if isinstance(record, dict):
        return {k: v for k, v in record.items() if k not in BANK_RECORD_FIELDS}
    return record


def _exporter_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """An event's changes as the exporter reads them: its records without the bank's fields
    (the values are stored JSON)."""
    out = dict(changes)
    for name in BANK_RECORDS & changes.keys():
        if changes[name]:
            out[name] = encode_fields({name: without_bank_fields(json.loads(changes[name]))})[name]
    return out


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event without the internal fields among its changes."""
    changes = event.get("set")
    hidden = INTERNAL_FIELDS | BANK_INTERNAL_FIELDS
    if not changes or not hidden & changes.keys():
        return event
    return {**event, "set": {k: v for k, v in changes.items() if k not in hidden}}


def exporter_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log as the exporter reads it: without the banks' internal maker-checker steps
    (its versions then skip those), without internal fields, and with each bank's steps
    signed by the bank (``bank:BOC-NB``), not by its officer."""
    seen = []
    for event in events:
        if event.get("type") in BANK_INTERNAL_EVENTS:
            continue
        event = public_event(event)
        if event.get("set"):
            event = {**event, "set": _exporter_changes(event["set"])}
        who = str(event.get("by", ""))
        if who.startswith("bank:") and who.count(":") > 1:
            # The bank, not its officer: who decided inside a bank stays with the bank.
            event = {**event, "by": who.rsplit(":", who.count(":") - 1)[0]}
        seen.append(event)
    return seen


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
    "BANK_RECORD_FIELDS",
    "INTERNAL_FIELDS",
    "as_seen_by_bank",
    "bank_event",
    "exporter_events",
    "holds",
    "offer_cut",
    "public_event",
    "without_bank_fields",
]
