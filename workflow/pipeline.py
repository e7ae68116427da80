"""The deal pipeline: submit, verify, route, bank decision, withdraw, and the sweeps.

Each step reads the deal, decides with the pure rules in ``checks`` and ``routing``, and
commits one atomic transition. Steps are idempotent: run twice (a redelivered task, a sweep
that re-dispatched a slow step) they change nothing twice, because every commit is a
compare-and-set on the version read and a step only acts on the state it expects.

The steps live by stage of a deal's life: ``intake`` (submit, verify, hold), ``placement``
(routing, the bank's decision and cancellation, withdrawal) and ``sweeps``; ``steps`` holds
the one atomic move they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from workflow.arrears import Arrears
from workflow.claims import Claims
from workflow.deal import utcnow
from workflow.deferral import Deferral, Deferrals
from workflow.errors import (
    AlreadyApproved,
    DealNotFound,
    DeferralRefused,
    DuplicateReceivable,
    IdempotencyKeyReused,
    InvalidDecision,
    MakerCheckerRefused,
    WorkflowError,
    WrongState,
)
from workflow.gateway import InsurerGateway
from workflow.intake import Intake, Submitted, new_deal_id
from workflow.placement import Decision, Placement
from workflow.reference import ReferenceRepository
from workflow.repayments import Repayment, Repayments
from workflow.servicing import Disbursement, Servicing
from workflow.settings import Settings
from workflow.steps import SWEEPER, WORKER
from workflow.store import DealStore
from workflow.sweeps import Sweeps
from workflow.withdrawal import Withdrawals


@dataclass
class Workflow(
    Intake, Placement, Withdrawals, Servicing, Repayments, Deferrals, Arrears, Claims, Sweeps
):
    """Every step of the pipeline, over one store, reference data, insurer and clock."""

    store: DealStore
    reference: ReferenceRepository
    insurer: InsurerGateway
    settings: Settings
    clock: Callable[[], datetime] = utcnow


__all__ = [
    "SWEEPER",
    "WORKER",
    "AlreadyApproved",
    "DealNotFound",
    "Decision",
    "Deferral",
    "DeferralRefused",
    "Disbursement",
    "Repayment",
    "DuplicateReceivable",
    "IdempotencyKeyReused",
    "InvalidDecision",
    "MakerCheckerRefused",
    "Submitted",
    "WorkflowError",
    "Workflow",
    "WrongState",
    "new_deal_id",
]
