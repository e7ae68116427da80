"""The insurer API's wire format: its answers read into Xinbao's records, and request bodies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from workflow.claim_rules import ClaimDecision, ClaimFiling
from workflow.deferral_rules import DeferralRequest
from workflow.gateway import InsurerUnavailable
from workflow.money import MAX_AMOUNT
from workflow.reference import BuyerLimit, CoverFacts, Declaration, Overdue, Policy

# The adapter's logger: an unreadable answer is logged as the adapter's own failure.
log = logging.getLogger("xinbao.insurer_http")


def read(what: str, build: Callable[[], Any]) -> Any:
    """Build a record from an answer; an answer missing fields is no answer."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        log.error("unreadable insurer answer (%s): %r", what, exc)
        raise InsurerUnavailable(f"unreadable insurer answer ({what})") from exc


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"not a boolean: {value!r}")
    return value


def _day(value: Any) -> date:
    return date.fromisoformat(value)


def _decimal(value: Any) -> Decimal:
    """A number as the insurer writes money and shares: a string (or an integer), finite.
    A float is refused: its binary digits are not the amount the insurer meant."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"not a decimal string: {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _money(value: Any) -> Decimal:
    """An amount from 0 to MAX_AMOUNT (the bounds the local reference file enforces; 0 is a
    limit the insurer cut to nothing)."""
    amount = _decimal(value)
    if not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"amount out of range: {value!r}")
    return amount


def _share(value: Any) -> Decimal:
    """A coverage ratio: more than 0, at most 1 (as the local reference file requires)."""
    share = _decimal(value)
    if not 0 < share <= 1:
        raise ValueError(f"share out of range: {value!r}")
    return share


def cover_facts(
    policy_no: str,
    buyer_code: str,
    invoices: list[str],
    policy: dict | None,
    cover: dict,
    declared: dict,
    overdues: dict,
) -> CoverFacts:
    """The cover facts of one application from the insurer's four answers."""
    by_invoice = {d["invoiceNumber"]: d for d in declared["declarations"]}
    declarations: dict[str, Declaration | None] = {}
    for number in invoices:
        found = by_invoice.get(number)
        declarations[number] = (
            Declaration(
                policy_no=policy_no,
                buyer_code=buyer_code,
                invoice_number=number,
                shipment_date=_day(found["shipmentDate"]),
                declared_on=_day(found["declaredOn"]),
            )
            if found and boolean(found["declared"])
            else None
        )
    limits = [_limit(policy_no, buyer_code, c) for c in cover["covers"]]
    return CoverFacts(
        policy=None if policy is None else _policy(policy),
        limits=sorted(limits, key=lambda lim: lim.limit_id),
        declarations=declarations,
        overdues=[
            Overdue(policy_no, buyer_code, _day(o["reportedOn"])) for o in overdues["overdues"]
        ],
    )


def _policy(raw: dict) -> Policy:
    terms = raw["terms"]
    return Policy(
        policy_no=str(raw["policyNo"]),
        exporter_uscc=str(raw["insuredId"]),
        status=str(raw["status"]),
        start=_day(raw["period"]["start"]),
        end=_day(raw["period"]["end"]),
        coverage_ratio=_share(raw["coverageRatio"]),
        premium_paid=boolean(raw["premiumPaid"]),
        declaration_window_days=int(raw["declarationWindowDays"]),
        max_credit_days=int(raw["maxCreditDays"]),
        covered_countries=tuple(raw["countries"]["covered"]),
        excluded_countries=tuple(raw["countries"]["excluded"]),
        insurer=str(raw["insurer"]),
        grace_days=int(terms["graceDays"]),
        notice_days=int(terms["noticeDays"]),
        claim_days=int(terms["claimDays"]),
        max_deferral_days=int(terms["maxDeferralDays"]),
    )


def _limit(policy_no: str, buyer_code: str, raw: dict) -> BuyerLimit:
    return BuyerLimit(
        limit_id=str(raw["coverId"]),
        policy_no=policy_no,
        buyer_code=buyer_code,
        buyer_name=str(raw["buyerName"]),
        country=str(raw["country"]),
        currency=str(raw["currency"]),
        amount=_money(raw["amount"]),
        max_credit_days=int(raw["maxCreditDays"]),
        effective=_day(raw["effective"]),
        expiry=_day(raw["expiry"]),
        status=str(raw["status"]),
    )


def claim_decision(raw: dict, loss: Decimal) -> ClaimDecision | None:
    """The insurer's decision on a claim of ``loss``; None while it is pending."""
    decision = raw["decision"]
    if decision == "pending":
        return None
    if decision not in ("approved", "partial", "refused"):
        raise ValueError(f"unknown claim decision {decision!r}")
    covered, indemnity = _money(raw["coveredLoss"]), _money(raw["indemnity"])
    # The insurer covers at most the loss claimed and pays at most the loss it covers.
    if covered > loss or indemnity > covered:
        raise ValueError(f"indemnity {indemnity} of covered loss {covered} for a loss of {loss}")
    return ClaimDecision(
        paid=decision != "refused",
        covered_loss=covered,
        indemnity=indemnity,
        reasons=tuple(str(r) for r in raw.get("reasons") or ()),
    )


def claim_body(f: ClaimFiling) -> dict[str, Any]:
    """A claim filing as the insurer's API names its fields."""
    return {
        "dealId": f.deal_id,
        "buyerCode": f.buyer_code,
        "currency": f.currency,
        "lossAmount": str(f.loss_amount),
        "documents": list(f.documents),
        "filedOn": f.filed_on.isoformat(),
        "noticeFiledOn": f.notice_filed_on.isoformat(),
        "noticeDeadline": f.notice_deadline.isoformat(),
        "claimDeadline": f.claim_deadline.isoformat(),
        "coverageRatio": str(f.coverage_ratio),
        "insuredCap": str(f.insured_cap),
    }


def deferral_body(r: DeferralRequest) -> dict[str, Any]:
    """A deferral request as the insurer's API names its fields."""
    return {
        "dealId": r.deal_id,
        "requestNumber": r.request_number,
        "buyerCode": r.buyer_code,
        "currency": r.currency,
        "outstanding": str(r.outstanding),
        "firstDueDate": r.first_due_date.isoformat(),
        "dueDate": r.due_date.isoformat(),
        "newDueDate": r.new_due_date.isoformat(),
        "daysPastDue": r.days_past_due,
        "deferralsBefore": r.deferrals_before,
        "askedOn": r.asked_on.isoformat(),
    }
