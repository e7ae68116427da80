"""The insurer gateway: how verification asks an insurer about policy, limits and declarations.

Adapters implement :class:`InsurerGateway`. The one here reads the insurer's data as operators
load it into Redis; an HTTP adapter for a live insurer API plugs in behind the same interface.
An adapter raises :class:`InsurerUnavailable` when it cannot get an answer right now, and the
deal waits (retried, then ``on_hold``) rather than being rejected on a transport failure.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from workflow.claim_rules import ClaimDecision, ClaimFiling, LocalClaimRules
from workflow.deal import Application
from workflow.deferral_rules import DeferralConsent, DeferralRequest, LocalDeferralRules
from workflow.limit_usage import LimitUsage
from workflow.reference import CoverFacts, ReferenceRepository
from workflow.reference.cache import ReferenceView


class InsurerUnavailable(Exception):
    """The insurer could not be asked now; the same question may succeed later."""


class InsurerGateway(Protocol):
    def cover_facts(self, application: Application) -> CoverFacts:
        """Policy, buyer limits, shipment declarations and overdue reports for the application."""
        ...

    def notify_possible_loss(self, deal_id: str, policy_no: str, on: date) -> str:
        """Send the notice of possible loss; the insurer's acknowledgement reference."""
        ...

    def decide_claim(self, filing: ClaimFiling) -> ClaimDecision | None:
        """The insurer's decision on a claim, or None while it has not decided."""
        ...

    def consent_to_deferral(self, request: DeferralRequest) -> DeferralConsent:
        """Whether the insurer's cover follows the advance to a later due date."""
        ...

    def report_limit_usage(self, usage: LimitUsage) -> None:
        """Tell the insurer what a deal now uses of its buyer limit (idempotent by report)."""
        ...


class ReferenceDataInsurer:
    """Answers from the insurer data loaded with ``xinbao load`` (policies, limits, ...)."""

    def __init__(self, reference: ReferenceRepository):
        self.reference = reference

    def notify_possible_loss(self, deal_id: str, policy_no: str, on: date) -> str:
        return f"NPL-{policy_no}-{deal_id}"

    def decide_claim(self, filing: ClaimFiling) -> ClaimDecision | None:
        """Decided at once by the documented local rules (workflow.claim_rules)."""
        return LocalClaimRules().decide(filing)

    def report_limit_usage(self, usage: LimitUsage) -> None:
        """Nothing to tell: the loaded limits are Xinbao's own record, and the use of each is
        the buyer exposure kept in Redis with every transition."""

    def consent_to_deferral(self, request: DeferralRequest) -> DeferralConsent:
        """Answered at once by the documented local rules (workflow.deferral_rules)."""
        return LocalDeferralRules().decide(request, self.reference.policy(request.policy_no))

    def cover_facts_at(self, application: Application, view: ReferenceView) -> CoverFacts:
        """As :meth:`cover_facts`, through a step's view of the reference data (its cache)."""
        if view.repository is not self.reference:
            return self.cover_facts(application)
        return view.cover_facts(
            application.policy_no,
            application.buyer.code,
            [inv.number for inv in application.invoices],
        )

    def cover_facts(self, application: Application) -> CoverFacts:
        return self.reference.cover_facts(
            application.policy_no,
            application.buyer.code,
            [inv.number for inv in application.invoices],
        )
