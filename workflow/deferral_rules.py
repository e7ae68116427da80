"""The local insurer's answer to a deferral (延期还本付息), by documented rules, and the request
and consent records every insurer adapter exchanges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from workflow.reasons import Reason
from workflow.reference.records import Policy

# How far past the advance's first due date the local insurer lets cover follow a deferral
# when the policy names no figure of its own.
MAX_DEFERRAL_DAYS = 180


@dataclass(frozen=True)
class DeferralRequest:
    """What the insurer is asked: move the cover of this advance to a later due date."""

    deal_id: str
    request_number: int  # 1 for the deal's first request, granted or not
    policy_no: str
    buyer_code: str
    currency: str
    outstanding: Decimal
    first_due_date: date
    due_date: date
    new_due_date: date
    days_past_due: int
    deferrals_before: int
    asked_on: date


@dataclass(frozen=True)
class DeferralConsent:
    granted: bool
    reference: str
    reasons: tuple[str, ...] = ()


class LocalDeferralRules:
    """How the local gateway answers (docs/lifecycle.md, "Deferral"):

    - the policy is not in force on the day asked: refused, POLICY_INACTIVE;
    - the new due date is after the policy's end, or more than the policy's
      ``max_deferral_days`` (default MAX_DEFERRAL_DAYS) past the first due date: refused,
      DEFERRAL_BEYOND_COVER;
    - asked after the notice-of-possible-loss deadline of the current due date (the arrears
      are a loss to report, no longer a gap to bridge): refused, DEFERRAL_TOO_LATE;
    - otherwise granted: cover follows the new due date.
    """

    def decide(self, request: DeferralRequest, policy: Policy | None) -> DeferralConsent:
        reference = f"DEF-{request.deal_id}-{request.request_number}"
        if policy is None or not policy.in_force_on(request.asked_on):
            return DeferralConsent(False, reference, (str(Reason.POLICY_INACTIVE),))
        longest = policy.max_deferral_days
        if (
            request.new_due_date > policy.end
            or (request.new_due_date - request.first_due_date).days > longest
        ):
            return DeferralConsent(False, reference, (str(Reason.DEFERRAL_BEYOND_COVER),))
        if request.days_past_due > policy.notice_days:
            return DeferralConsent(False, reference, (str(Reason.DEFERRAL_TOO_LATE),))
        return DeferralConsent(True, reference)


__all__ = ["MAX_DEFERRAL_DAYS", "DeferralConsent", "DeferralRequest", "LocalDeferralRules"]
