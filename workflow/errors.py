"""The workflow's refusals: each carries a machine-readable code the API answers with."""

from __future__ import annotations

from workflow.reasons import Reason


class WorkflowError(Exception):
    """A request the workflow refuses; ``code`` is machine-readable."""

    code = "CONFLICT"

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.details = details


class DealNotFound(WorkflowError):
    code = "NOT_FOUND"


class DuplicateReceivable(WorkflowError):
    code = str(Reason.DUPLICATE_RECEIVABLE)


class IdempotencyKeyReused(WorkflowError):
    code = "IDEMPOTENCY_KEY_REUSED"


class WrongState(WorkflowError):
    code = "INVALID_STATE"


class AlreadyApproved(WrongState):
    """The exporter may not withdraw once a bank has approved: the money may be out."""

    code = "ALREADY_APPROVED"


class InvalidDecision(WorkflowError):
    """A decision whose values the deal cannot take (e.g. more than the offered amount)."""

    code = "INVALID_DECISION"

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)
        self.field = field


class CoverLapsed(WorkflowError):
    """The buyer limit the deal was verified against is gone or no longer in force: a bank
    must not approve as if it were covered."""

    def __init__(self, message: str, reason: Reason):
        super().__init__(message, reason=str(reason))
        self.code = str(reason)


class DeferralRefused(WorkflowError):
    """The insurer would not let its cover follow the new due date: the deferral is not
    made (the refusal is recorded on the deal)."""

    code = "DEFERRAL_REFUSED"

    def __init__(self, reasons: list[str], new_due_date: object):
        super().__init__(
            f"the insurer refused to extend cover to {new_due_date}: {', '.join(reasons)}",
            reasons=reasons,
        )
        self.reasons = reasons


class MakerCheckerRefused(WorkflowError):
    """A second approval the maker-checker rule forbids: the officer who approved first
    checking their own approval, or an officer without the checker role."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


SAME_OFFICER = "SAME_OFFICER"
CHECKER_ROLE_REQUIRED = "CHECKER_ROLE_REQUIRED"
NO_FIRST_APPROVAL = "NO_FIRST_APPROVAL"
