"""Deal states, reason codes, checks and events in words on pages, in the page's language.

The workflow keeps the codes and their English descriptions (``workflow.reasons.describe``,
used by the JSON API); it never imports Flask, so the translatable wording lives here. The
English text of a reason is its description, word for word (a test holds them together).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext, lazy_pgettext
from flask_babel.speaklater import LazyString

from workflow.checks import LIMIT_ROOM_CHECK, WHITELIST_CHECK
from workflow.reasons import Reason
from workflow.states import State
from workflow.visibility import BANK_INTERNAL_EVENTS

_l = lazy_gettext

# "state" context: the same English word may be an event too ("Approved"), said differently.
STATE_WORDS: dict[State, LazyString] = {
    State.SUBMITTED: lazy_pgettext("state", "Submitted"),
    State.VERIFYING: lazy_pgettext("state", "Being verified"),
    State.ON_HOLD: lazy_pgettext("state", "On hold"),
    State.REJECTED: lazy_pgettext("state", "Rejected"),
    State.ROUTING: lazy_pgettext("state", "Being routed"),
    State.PENDING_BANK: lazy_pgettext("state", "Awaiting the bank's decision"),
    State.UNPLACED: lazy_pgettext("state", "No bank took it"),
    State.APPROVED: lazy_pgettext("state", "Approved"),
    State.DISBURSED: lazy_pgettext("state", "Disbursed"),
    State.REPAID: lazy_pgettext("state", "Repaid"),
    State.OVERDUE: lazy_pgettext("state", "Overdue"),
    State.CLAIM_FILED: lazy_pgettext("state", "Claim filed"),
    State.INDEMNIFIED: lazy_pgettext("state", "Indemnified"),
    State.CLAIM_REJECTED: lazy_pgettext("state", "Claim rejected"),
    State.WITHDRAWN: lazy_pgettext("state", "Withdrawn by the exporter"),
    State.CANCELLED: lazy_pgettext("state", "Approval cancelled"),
}

REASON_WORDS: dict[Reason, LazyString] = {
    Reason.POLICY_NOT_FOUND: _l("No policy with this number is held by the exporter."),
    Reason.POLICY_INACTIVE: _l("The policy is not in force on the shipment date."),
    Reason.PREMIUM_UNPAID: _l("The policy premium is not paid."),
    Reason.LIMIT_NOT_FOUND: _l("The insurer has no credit limit for this buyer under the policy."),
    Reason.LIMIT_INACTIVE: _l("The buyer's credit limit is not in force."),
    Reason.LIMIT_INSUFFICIENT: _l("The buyer's credit limit has no room for these invoices."),
    Reason.CURRENCY_MISMATCH: _l("The invoice currency differs from the credit limit's currency."),
    Reason.CREDIT_PERIOD_EXCEEDED: _l(
        "Due date minus shipment date exceeds the maximum credit days."
    ),
    Reason.SHIPMENT_BEFORE_LIMIT: _l("The goods shipped before the credit limit took effect."),
    Reason.SHIPMENT_NOT_DECLARED: _l("The shipment was not declared to the insurer."),
    Reason.DECLARATION_LATE: _l("The shipment was declared after the policy's declaration window."),
    Reason.BUYER_OVERDUE: _l("An overdue or possible loss is reported on this buyer."),
    Reason.COUNTRY_EXCLUDED: _l("The buyer's country is not covered by the policy."),
    Reason.EXPORTER_NOT_WHITELISTED: _l(
        "The exporter is on no active unified-insurance whitelist."
    ),
    Reason.WHITELIST_EXPIRED: _l("The exporter's unified-insurance whitelist has expired."),
    Reason.DUPLICATE_RECEIVABLE: _l(
        "An invoice, bill of lading or customs declaration is already in another live"
        " financing deal."
    ),
    Reason.NO_ELIGIBLE_BANK: _l("No bank is left that can finance this deal."),
    Reason.BUYER_MISMATCH: _l("The buyer's code or country differs from the insurer's record."),
    Reason.SHIPMENT_DATE_MISMATCH: _l(
        "The invoice's shipment date differs from the declaration's."
    ),
    Reason.RECEIVABLE_MATURED: _l("The invoice is already due: there is nothing left to finance."),
    Reason.BANK_DECLINED: _l("The bank declined the deal."),
    Reason.BANK_DEADLINE_MISSED: _l("The bank did not decide before its deadline."),
    Reason.INSURER_UNAVAILABLE: _l("The insurer could not be reached; verification will resume."),
    Reason.BANK_CURRENCY_UNSUPPORTED: _l("The bank does not lend in this currency."),
    Reason.BANK_AMOUNT_OUT_OF_RANGE: _l("The financeable amount is outside the bank's range."),
    Reason.BANK_TENOR_EXCEEDED: _l("The tenor is longer than the bank or the policy allows."),
    Reason.WITHDRAWN_BY_EXPORTER: _l("The exporter withdrew the application."),
    Reason.APPROVAL_CANCELLED_BY_BANK: _l("The approving bank cancelled its approval."),
    Reason.APPROVAL_LAPSED: _l("The approval lapsed: the bank did not pay the advance in time."),
    Reason.CLAIM_LATE: _l("The claim reached the insurer after the policy's claim deadline."),
    Reason.NOTICE_LATE: _l("The notice of possible loss reached the insurer after its deadline."),
    Reason.DEFERRAL_BEYOND_COVER: _l("The insurer's cover cannot follow the due date that far."),
    Reason.DEFERRAL_TOO_LATE: _l("The deferral was asked after the notice-of-loss deadline."),
    Reason.BUYER_NAME_MISMATCH: _l("The buyer's stated name differs from the insurer's record."),
    Reason.BANK_TRADE_DOCUMENTS_REQUIRED: _l(
        "The bank requires a bill of lading and a customs declaration on every invoice."
    ),
    Reason.CUSTOMS_RECORD_NOT_FOUND: _l("Customs has no export record of the declaration number."),
    Reason.TRADE_DOCUMENTS_MISMATCH: _l(
        "The customs export record does not match the exporter, buyer's country, currency or"
        " amount."
    ),
}

# Every check the workflow runs (workflow.checks), by its name.
CHECK_WORDS: dict[str, LazyString] = {
    "policy_found": _l("Policy held by the exporter"),
    "policy_in_force": _l("Policy in force on the shipment date"),
    "premium_paid": _l("Premium paid"),
    "country_covered": _l("Buyer's country covered"),
    "limit_found": _l("Credit limit on the buyer"),
    "limit_in_force": _l("Credit limit in force"),
    "buyer_matches": _l("Buyer matches the insurer's record"),
    "currency_matches": _l("Invoice currency is the limit's"),
    "shipment_after_limit": _l("Shipped after the limit took effect"),
    "credit_period_within_limit": _l("Credit period within the maximum"),
    "shipment_declared": _l("Shipment declared to the insurer"),
    "declared_in_window": _l("Declared in time"),
    "declared_shipment_matches": _l("Declared shipment date matches"),
    "receivable_not_matured": _l("Invoice not yet due"),
    "buyer_not_overdue": _l("No overdue reported on the buyer"),
    "customs_record_found": _l("Customs record of the declaration found (if one is given)"),
    "customs_exporter_matches": _l("Declaration is the exporter's own"),
    "customs_destination_matches": _l("Goods exported to the buyer's country"),
    "customs_currency_matches": _l("Declared currency is the invoice's"),
    "customs_amount_matches": _l("Invoiced amount matches the declared value"),
    LIMIT_ROOM_CHECK: _l("Buyer limit has room"),
    WHITELIST_CHECK: _l("Exporter on a whitelist (统保名单)"),
}

# The events of a deal's timeline (the ``event=`` of each workflow step).
EVENT_WORDS: dict[str, LazyString] = {
    "submitted": lazy_pgettext("event", "Submitted"),
    "verification_started": lazy_pgettext("event", "Verification started"),
    "verified": lazy_pgettext("event", "Verified"),
    "rejected": lazy_pgettext("event", "Rejected"),
    "on_hold": lazy_pgettext("event", "On hold"),
    "offered_to_bank": lazy_pgettext("event", "Offered to bank"),
    "unplaced": lazy_pgettext("event", "Unplaced"),
    "approved": lazy_pgettext("event", "Approved"),
    "declined": lazy_pgettext("event", "Declined"),
    "withdrawn": lazy_pgettext("event", "Withdrawn"),
    "approval_cancelled": lazy_pgettext("event", "Approval cancelled"),
    "approval_lapsed": lazy_pgettext("event", "Approval lapsed"),
    "disbursed": lazy_pgettext("event", "Advance paid out"),
    "repayment": lazy_pgettext("event", "Repayment received"),
    "repaid": lazy_pgettext("event", "Repaid in full"),
    "overdue": lazy_pgettext("event", "Overdue: unpaid after the due date"),
    "notice_deadline_missed": lazy_pgettext(
        "event", "Deadline for the notice of possible loss missed"
    ),
    "claim_deadline_missed": lazy_pgettext("event", "Deadline for the claim missed"),
    "notice_filed": lazy_pgettext("event", "Notice of possible loss sent to the insurer"),
    "claim_filed": lazy_pgettext("event", "Claim filed with the insurer"),
    "indemnified": lazy_pgettext("event", "Indemnity paid to the bank"),
    "claim_rejected": lazy_pgettext("event", "Claim rejected by the insurer"),
    "recovery": lazy_pgettext("event", "Recovery after indemnity"),
    "deadline_missed": lazy_pgettext("event", "Deadline missed"),
    "first_approval": lazy_pgettext("event", "First approval (awaiting a checker)"),
    "first_approval_returned": lazy_pgettext("event", "First approval sent back"),
    "disbursement_entered": lazy_pgettext("event", "Disbursement entered (awaiting a checker)"),
    "disbursement_returned": lazy_pgettext("event", "Disbursement sent back"),
    "deferred": lazy_pgettext("event", "Due date deferred with the insurer's consent"),
    "deferral_refused": lazy_pgettext("event", "Deferral refused by the insurer"),
}


def _plain(code: str) -> str:
    return code.replace("_", " ").capitalize()


def state_words(state: str) -> str:
    """A deal state in words; an unknown one as it is."""
    try:
        return str(STATE_WORDS[State(state)])
    except ValueError:
        return str(state)


def reason_words(code: str, default: str | None = None) -> str:
    """A reason code in words; an unknown code as ``default`` (the code itself if None)."""
    try:
        return str(REASON_WORDS[Reason(code)])
    except ValueError:
        return code if default is None else default


def check_words(name: str) -> str:
    """A check's name in words; an unknown one spelled out from its name."""
    words = CHECK_WORDS.get(name)
    return str(words) if words is not None else _plain(name)


def event_words(event_type: str) -> str:
    """A timeline event in words; an unknown one spelled out from its type."""
    words = EVENT_WORDS.get(event_type)
    return str(words) if words is not None else _plain(event_type)


# How a state reads on the exporter's side, where it differs from the neutral wording.
EXPORTER_STATE_WORDS: dict[State, LazyString] = {
    State.SUBMITTED: lazy_pgettext("state", "Submitted, waiting to be checked"),
    State.ON_HOLD: lazy_pgettext(
        "state", "On hold: the insurer could not be reached, checking resumes shortly"
    ),
    State.ROUTING: lazy_pgettext("state", "Looking for a bank"),
    State.PENDING_BANK: lazy_pgettext("state", "With a bank, awaiting its decision"),
    State.WITHDRAWN: lazy_pgettext("state", "Withdrawn by you"),
    State.CANCELLED: lazy_pgettext("state", "Approval cancelled by the bank"),
}

# Why a bank's offer ended: the exporter is never told which bank passed, nor why.
BANK_PASSED_REASONS = frozenset({str(Reason.BANK_DECLINED), str(Reason.BANK_DEADLINE_MISSED)})
BANK_PASSED_EVENTS = frozenset({"declined", "deadline_missed"})


# How a state reads on the bank's desk, where it says what the bank does next.
BANK_STATE_WORDS: dict[State, LazyString] = {
    State.APPROVED: lazy_pgettext("state", "Approved, to be disbursed"),
    State.DISBURSED: lazy_pgettext("state", "Disbursed, awaiting repayment"),
    State.REPAID: lazy_pgettext("state", "Repaid in full"),
    State.CANCELLED: lazy_pgettext("state", "Approval cancelled or lapsed"),
}
# An approval that lapsed (never disbursed in time): cancelled, but by no one.
LAPSED_WORDS = lazy_pgettext("state", "Approval lapsed: the advance was not paid out in time")


def bank_state_words(state: str) -> str:
    """A deal state as the bank's desk reads it."""
    try:
        words = BANK_STATE_WORDS.get(State(state))
    except ValueError:
        return str(state)
    return str(words) if words is not None else state_words(state)


def exporter_state_words(state: str) -> str:
    """A deal state as the exporter reads it."""
    try:
        words = EXPORTER_STATE_WORDS.get(State(state))
    except ValueError:
        return str(state)
    return str(words) if words is not None else state_words(state)


def check_rows(
    view: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A deal view's checks as table rows, its failed (invoice, check) pairs and its
    warnings, each with its words (the desk and the portal show them alike)."""
    checks = [
        {
            "name": check_words(name),
            "ok": result == "ok",
            "not_run": result == "not_run",
            "code": result,
            "words": "" if result in ("ok", "not_run") else reason_words(result),
        }
        for name, result in view["checks"].items()
    ]
    failures = [
        {
            **failure,
            "check_words": check_words(failure.get("check", "")),
            "words": reason_words(failure.get("reason", "")),
        }
        for failure in view["failures"]
    ]
    warnings = [{**w, "words": reason_words(w.get("code", ""), "")} for w in view["warnings"]]
    return checks, failures, warnings


def _row(event: dict[str, Any], who: str, what: str, to: str, why: list[str]) -> dict[str, Any]:
    return {
        "at": event.get("at"),
        "who": who,
        "what": what,
        "to": to,
        "why": [(code, reason_words(code)) for code in why],
    }


def bank_timeline(events: list[dict[str, Any]], bank_id: str) -> list[dict[str, Any]]:
    """A bank's view of the log (``visibility.bank_event``: other banks already anonymous)."""
    rows = []
    for event in events:
        who = event.get("by", "")
        if who in ("worker", "sweeper"):
            actor = _("Xinbao (automatic)")
        elif who.startswith(f"bank:{bank_id}:"):
            actor = f"{who.split(':', 2)[2]} ({bank_id})"
        elif who == "bank:other":
            actor = _("Another bank")
        elif who.startswith("exporter:"):
            actor = _("The exporter")
        else:
            actor = who
        to = state_words(event["to"]) if event.get("to") else ""
        rows.append(
            _row(event, actor, event_words(event.get("type", "")), to, event.get("why", []))
        )
    return rows


def exporter_timeline(
    events: list[dict[str, Any]], bank_id: str | None, bank_name: str | None
) -> list[dict[str, Any]]:
    """The exporter's view of the log: only the bank the deal is with now is named; a bank
    whose offer ended is "a bank", and whether it declined or let its deadline pass, and why,
    stays with that bank."""
    named = bank_name or bank_id or ""
    rows = []
    for event in events:
        who, kind = event.get("by", ""), event.get("type", "")
        to = exporter_state_words(event["to"]) if event.get("to") else ""
        if kind == "approval_lapsed":
            to = str(LAPSED_WORDS)
        if kind in BANK_INTERNAL_EVENTS:
            continue
        if kind in BANK_PASSED_EVENTS:
            rows.append(
                _row(event, _("A bank"), _("A bank passed; offered to the next bank"), to, [])
            )
            continue
        if who in ("worker", "sweeper"):
            actor = _("Xinbao (automatic)")
        elif who.startswith("exporter:"):
            actor = _("You")
        elif bank_id and who.startswith(f"bank:{bank_id}:"):
            actor = named
        elif who.startswith("bank:"):
            actor = _("A bank")
        else:
            actor = who
        what = event_words(kind)
        if kind == "offered_to_bank":
            offered_to = (event.get("set") or {}).get("bank_id")
            if bank_id and offered_to == bank_id:
                what = _("Offered to %(bank)s", bank=named)
            else:
                what = _("Offered to a bank")
        why = [code for code in event.get("why", []) if code not in BANK_PASSED_REASONS]
        rows.append(_row(event, actor, what, to, why))
    return rows
