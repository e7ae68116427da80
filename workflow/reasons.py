"""Machine-readable reason codes: stable names, shown translated to people."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
    POLICY_INACTIVE = "POLICY_INACTIVE"
    PREMIUM_UNPAID = "PREMIUM_UNPAID"
    LIMIT_NOT_FOUND = "LIMIT_NOT_FOUND"
    LIMIT_INACTIVE = "LIMIT_INACTIVE"
    LIMIT_INSUFFICIENT = "LIMIT_INSUFFICIENT"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    CREDIT_PERIOD_EXCEEDED = "CREDIT_PERIOD_EXCEEDED"
    SHIPMENT_BEFORE_LIMIT = "SHIPMENT_BEFORE_LIMIT"
    SHIPMENT_NOT_DECLARED = "SHIPMENT_NOT_DECLARED"
    DECLARATION_LATE = "DECLARATION_LATE"
    BUYER_OVERDUE = "BUYER_OVERDUE"
    COUNTRY_EXCLUDED = "COUNTRY_EXCLUDED"
    EXPORTER_NOT_WHITELISTED = "EXPORTER_NOT_WHITELISTED"
    WHITELIST_EXPIRED = "WHITELIST_EXPIRED"
    DUPLICATE_RECEIVABLE = "DUPLICATE_RECEIVABLE"
    NO_ELIGIBLE_BANK = "NO_ELIGIBLE_BANK"
    # Added beyond the brief's list where the domain needs them.
    BUYER_MISMATCH = "BUYER_MISMATCH"
    SHIPMENT_DATE_MISMATCH = "SHIPMENT_DATE_MISMATCH"
    RECEIVABLE_MATURED = "RECEIVABLE_MATURED"
    BANK_DECLINED = "BANK_DECLINED"
    BANK_DEADLINE_MISSED = "BANK_DEADLINE_MISSED"
    INSURER_UNAVAILABLE = "INSURER_UNAVAILABLE"
    BANK_CURRENCY_UNSUPPORTED = "BANK_CURRENCY_UNSUPPORTED"
    BANK_AMOUNT_OUT_OF_RANGE = "BANK_AMOUNT_OUT_OF_RANGE"
    BANK_TENOR_EXCEEDED = "BANK_TENOR_EXCEEDED"
    WITHDRAWN_BY_EXPORTER = "WITHDRAWN_BY_EXPORTER"
    APPROVAL_CANCELLED_BY_BANK = "APPROVAL_CANCELLED_BY_BANK"
    APPROVAL_LAPSED = "APPROVAL_LAPSED"
    CLAIM_LATE = "CLAIM_LATE"
    NOTICE_LATE = "NOTICE_LATE"
    DEFERRAL_BEYOND_COVER = "DEFERRAL_BEYOND_COVER"
    DEFERRAL_TOO_LATE = "DEFERRAL_TOO_LATE"
    # Trade documents (四流合一).
    BANK_TRADE_DOCUMENTS_REQUIRED = "BANK_TRADE_DOCUMENTS_REQUIRED"
    CUSTOMS_RECORD_NOT_FOUND = "CUSTOMS_RECORD_NOT_FOUND"
    TRADE_DOCUMENTS_MISMATCH = "TRADE_DOCUMENTS_MISMATCH"
    # Warnings: recorded on the deal for the bank to see, never a refusal.
    BUYER_NAME_MISMATCH = "BUYER_NAME_MISMATCH"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.POLICY_NOT_FOUND: "No policy with this number is held by the exporter.",
    Reason.POLICY_INACTIVE: "The policy is not in force on the shipment date.",
    Reason.PREMIUM_UNPAID: "The policy premium is not paid.",
    Reason.LIMIT_NOT_FOUND: "The insurer has no credit limit for this buyer under the policy.",
    Reason.LIMIT_INACTIVE: "The buyer's credit limit is not in force.",
    Reason.LIMIT_INSUFFICIENT: "The buyer's credit limit has no room for these invoices.",
    Reason.CURRENCY_MISMATCH: "The invoice currency differs from the credit limit's currency.",
    Reason.CREDIT_PERIOD_EXCEEDED: "Due date minus shipment date exceeds the maximum credit days.",
    Reason.SHIPMENT_BEFORE_LIMIT: "The goods shipped before the credit limit took effect.",
    Reason.SHIPMENT_NOT_DECLARED: "The shipment was not declared to the insurer.",
    Reason.DECLARATION_LATE: "The shipment was declared after the policy's declaration window.",
    Reason.BUYER_OVERDUE: "An overdue or possible loss is reported on this buyer.",
    Reason.COUNTRY_EXCLUDED: "The buyer's country is not covered by the policy.",
    Reason.EXPORTER_NOT_WHITELISTED: "The exporter is on no active unified-insurance whitelist.",
    Reason.WHITELIST_EXPIRED: "The exporter's unified-insurance whitelist has expired.",
    Reason.DUPLICATE_RECEIVABLE: (
        "An invoice, bill of lading or customs declaration is already in another live"
        " financing deal."
    ),
    Reason.NO_ELIGIBLE_BANK: "No bank is left that can finance this deal.",
    Reason.BUYER_MISMATCH: "The buyer's code or country differs from the insurer's record.",
    Reason.SHIPMENT_DATE_MISMATCH: "The invoice's shipment date differs from the declaration's.",
    Reason.RECEIVABLE_MATURED: "The invoice is already due: there is nothing left to finance.",
    Reason.BANK_DECLINED: "The bank declined the deal.",
    Reason.BANK_DEADLINE_MISSED: "The bank did not decide before its deadline.",
    Reason.INSURER_UNAVAILABLE: "The insurer could not be reached; verification will resume.",
    Reason.BANK_CURRENCY_UNSUPPORTED: "The bank does not lend in this currency.",
    Reason.BANK_AMOUNT_OUT_OF_RANGE: "The financeable amount is outside the bank's range.",
    Reason.BANK_TENOR_EXCEEDED: "The tenor is longer than the bank or the policy allows.",
    Reason.WITHDRAWN_BY_EXPORTER: "The exporter withdrew the application.",
    Reason.APPROVAL_CANCELLED_BY_BANK: "The approving bank cancelled its approval.",
    Reason.APPROVAL_LAPSED: "The approval lapsed: the bank did not pay the advance in time.",
    Reason.CLAIM_LATE: "The claim reached the insurer after the policy's claim deadline.",
    Reason.NOTICE_LATE: "The notice of possible loss reached the insurer after its deadline.",
    Reason.DEFERRAL_BEYOND_COVER: "The insurer's cover cannot follow the due date that far.",
    Reason.DEFERRAL_TOO_LATE: "The deferral was asked after the notice-of-loss deadline.",
    Reason.BUYER_NAME_MISMATCH: "The buyer's stated name differs from the insurer's record.",
    Reason.BANK_TRADE_DOCUMENTS_REQUIRED: (
        "The bank requires a bill of lading and a customs declaration on every invoice."
    ),
    Reason.CUSTOMS_RECORD_NOT_FOUND: "Customs has no export record of the declaration number.",
    Reason.TRADE_DOCUMENTS_MISMATCH: (
        "The customs export record does not match the exporter, buyer's country, currency or"
        " amount."
    ),
}


def describe(code: str, default: str | None = None) -> str:
    """A reason code in words; an unknown code as ``default`` (the code itself if None)."""
    try:
        return DESCRIPTIONS[Reason(code)]
    except ValueError:
        return code if default is None else default
