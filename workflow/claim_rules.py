"""The local insurer's claim decisions, by documented rules (docs/lifecycle.md), and the
filing and decision records every insurer adapter exchanges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from workflow.money import quantize
from workflow.reasons import Reason

# A notice this many days late still counts, with the indemnity cut by LATE_NOTICE_CUT.
LATE_NOTICE_GRACE_DAYS = 30
LATE_NOTICE_CUT = Decimal("0.20")


@dataclass(frozen=True)
class ClaimFiling:
    """What the insurer is told of a claim."""

    deal_id: str
    policy_no: str
    buyer_code: str
    currency: str
    loss_amount: Decimal
    documents: tuple[str, ...]
    filed_on: date
    notice_filed_on: date
    notice_deadline: date
    claim_deadline: date
    coverage_ratio: Decimal
    insured_cap: Decimal


@dataclass(frozen=True)
class ClaimDecision:
    paid: bool
    covered_loss: Decimal
    indemnity: Decimal
    reasons: tuple[str, ...] = ()


class LocalClaimRules:
    """How the local gateway decides a claim (docs/lifecycle.md):

    - filed after the claim deadline: rejected, CLAIM_LATE;
    - notice more than LATE_NOTICE_GRACE_DAYS late: rejected, NOTICE_LATE;
    - otherwise covered loss = the loss claimed, at most the insured cap (the deal's invoice
      total, at most the buyer limit); indemnity = covered loss x coverage ratio, cut by
      LATE_NOTICE_CUT when the notice was late (NOTICE_LATE), half up to the cent.
    """

    def decide(self, filing: ClaimFiling) -> ClaimDecision:
        covered = min(filing.loss_amount, filing.insured_cap)
        if filing.filed_on > filing.claim_deadline:
            return ClaimDecision(False, covered, Decimal("0.00"), (str(Reason.CLAIM_LATE),))
        late = (filing.notice_filed_on - filing.notice_deadline).days
        if late > LATE_NOTICE_GRACE_DAYS:
            return ClaimDecision(False, covered, Decimal("0.00"), (str(Reason.NOTICE_LATE),))
        indemnity = covered * filing.coverage_ratio
        reasons: tuple[str, ...] = ()
        if late > 0:
            indemnity *= 1 - LATE_NOTICE_CUT
            reasons = (str(Reason.NOTICE_LATE),)
        return ClaimDecision(True, covered, quantize(indemnity), reasons)


__all__ = ["ClaimDecision", "ClaimFiling", "LocalClaimRules"]
