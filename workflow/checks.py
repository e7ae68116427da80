"""The insurer-cover and trade-document checks a bank needs before it advances money, each a
small named rule.

Every check takes the verification context and one invoice and returns a reason code when the
invoice fails it, or None. A check whose input is missing (no policy, no limit) returns None:
the check that found it missing has already reported the reason.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from workflow.deal import Application, Deal, Invoice
from workflow.reasons import Reason
from workflow.reference import BuyerLimit, CoverFacts, Policy, Whitelist
from workflow.reference.records import ACTIVE, CustomsRecord


@dataclass(frozen=True)
class CustomsFacts:
    """What the customs feed says about the declarations an application names."""

    records: dict[str, CustomsRecord | None]  # by declaration number
    # A declaration number without a record is refused (the feed is in use: settings).
    required: bool = False
    # How far an invoice amount may differ from the declared one, as a share of the latter.
    tolerance: Decimal = Decimal("0.05")


NO_CUSTOMS = CustomsFacts({})


@dataclass(frozen=True)
class Context:
    application: Application
    facts: CoverFacts
    today: date
    limit: BuyerLimit | None = field(default=None)
    customs: CustomsFacts = field(default=NO_CUSTOMS)


def choose_limit(app: Application, limits: list[BuyerLimit], today: date) -> BuyerLimit | None:
    """The buyer limit that covers this application: in force today, in its currency if any.

    A limit of another policy is none of this policy's. One recorded for another buyer code (a
    stale lookup) is chosen only when nothing else is, so that buyer_matches reports it. Of two
    limits the insurer has in force for the same buyer and currency (ambiguous data), the
    smaller caps the exposure, whatever their ids.
    """
    limits = [lim for lim in limits if lim.policy_no == app.policy_no]
    limits = [lim for lim in limits if lim.buyer_code == app.buyer.code] or limits
    limits = sorted(limits, key=lambda lim: (lim.amount, lim.limit_id))
    in_force = [lim for lim in limits if lim.in_force_on(today)]
    for candidates in (
        [lim for lim in in_force if lim.currency == app.currency],
        in_force,
        [lim for lim in limits if lim.currency == app.currency],
        limits,
    ):
        if candidates:
            return candidates[0]
    return None


Check = Callable[[Context, Invoice], Reason | None]


def policy_found(ctx: Context, inv: Invoice) -> Reason | None:
    policy = ctx.facts.policy
    # A policy held by another exporter is "not found" for this one: no existence leak.
    if policy is None or policy.exporter_uscc != ctx.application.exporter_uscc:
        return Reason.POLICY_NOT_FOUND
    return None


def _policy(ctx: Context) -> Policy | None:
    policy = ctx.facts.policy
    if policy is None or policy.exporter_uscc != ctx.application.exporter_uscc:
        return None
    return policy


def policy_in_force(ctx: Context, inv: Invoice) -> Reason | None:
    policy = _policy(ctx)
    if policy and not policy.in_force_on(inv.shipment_date):
        return Reason.POLICY_INACTIVE
    return None


def premium_paid(ctx: Context, inv: Invoice) -> Reason | None:
    policy = _policy(ctx)
    if policy and not policy.premium_paid:
        return Reason.PREMIUM_UNPAID
    return None


def country_covered(ctx: Context, inv: Invoice) -> Reason | None:
    policy = _policy(ctx)
    country = ctx.limit.country if ctx.limit else ctx.application.buyer.country
    if policy and not policy.covers_country(country):
        return Reason.COUNTRY_EXCLUDED
    return None


def limit_found(ctx: Context, inv: Invoice) -> Reason | None:
    return Reason.LIMIT_NOT_FOUND if ctx.limit is None else None


def limit_in_force(ctx: Context, inv: Invoice) -> Reason | None:
    if ctx.limit and not ctx.limit.in_force_on(ctx.today):
        return Reason.LIMIT_INACTIVE
    return None


def buyer_matches(ctx: Context, inv: Invoice) -> Reason | None:
    buyer = ctx.application.buyer
    if ctx.limit and (ctx.limit.buyer_code, ctx.limit.country) != (buyer.code, buyer.country):
        return Reason.BUYER_MISMATCH
    return None


def _name_key(name: str) -> str:
    # Case, spacing and Unicode form are how the same firm's name differs between two records.
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def buyer_warnings(app: Application, limit: BuyerLimit | None) -> list[dict[str, str]]:
    """What a bank should see but need not refuse: the stated buyer name differing from the
    insurer's record of the same buyer code."""
    if limit is None or limit.buyer_code != app.buyer.code:
        return []
    if _name_key(limit.buyer_name) == _name_key(app.buyer.name):
        return []
    return [
        {
            "code": str(Reason.BUYER_NAME_MISMATCH),
            "stated_name": app.buyer.name,
            "insurer_name": limit.buyer_name,
        }
    ]


def currency_matches(ctx: Context, inv: Invoice) -> Reason | None:
    if ctx.limit and ctx.limit.currency != inv.currency:
        return Reason.CURRENCY_MISMATCH
    return None


def shipment_after_limit(ctx: Context, inv: Invoice) -> Reason | None:
    if ctx.limit and inv.shipment_date < ctx.limit.effective:
        return Reason.SHIPMENT_BEFORE_LIMIT
    return None


def credit_period_within_limit(ctx: Context, inv: Invoice) -> Reason | None:
    allowed = [lim.max_credit_days for lim in (ctx.limit,) if lim]
    policy = _policy(ctx)
    if policy:
        allowed.append(policy.max_credit_days)
    if allowed and (inv.due_date - inv.shipment_date).days > min(allowed):
        return Reason.CREDIT_PERIOD_EXCEEDED
    return None


def shipment_declared(ctx: Context, inv: Invoice) -> Reason | None:
    if ctx.facts.declarations.get(inv.number) is None:
        return Reason.SHIPMENT_NOT_DECLARED
    return None


def declared_in_window(ctx: Context, inv: Invoice) -> Reason | None:
    declaration = ctx.facts.declarations.get(inv.number)
    policy = _policy(ctx)
    if declaration and policy:
        # The insurer's record of the shipment is what counts, not the applicant's invoice.
        late_by = (declaration.declared_on - declaration.shipment_date).days
        if late_by > policy.declaration_window_days:
            return Reason.DECLARATION_LATE
    return None


def declared_shipment_matches(ctx: Context, inv: Invoice) -> Reason | None:
    declaration = ctx.facts.declarations.get(inv.number)
    if declaration and declaration.shipment_date != inv.shipment_date:
        return Reason.SHIPMENT_DATE_MISMATCH
    return None


def receivable_not_matured(ctx: Context, inv: Invoice) -> Reason | None:
    # A receivable already due is a collection matter, not something to finance.
    return Reason.RECEIVABLE_MATURED if inv.due_date <= ctx.today else None


def buyer_not_overdue(ctx: Context, inv: Invoice) -> Reason | None:
    if any(o.reported_on <= ctx.today for o in ctx.facts.overdues):
        return Reason.BUYER_OVERDUE
    return None


def customs_record_found(ctx: Context, inv: Invoice) -> Reason | None:
    # An invoice without a declaration number has nothing to look up (a bank that wants one
    # requires trade documents in routing).
    number = inv.customs_declaration
    if number and ctx.customs.required and ctx.customs.records.get(number) is None:
        return Reason.CUSTOMS_RECORD_NOT_FOUND
    return None


def _customs_record(ctx: Context, inv: Invoice) -> CustomsRecord | None:
    number = inv.customs_declaration
    return ctx.customs.records.get(number) if number else None


def customs_exporter_matches(ctx: Context, inv: Invoice) -> Reason | None:
    # Another exporter's declaration: goods someone else exported, borrowed as a document.
    record = _customs_record(ctx, inv)
    if record and record.exporter_uscc != ctx.application.exporter_uscc:
        return Reason.TRADE_DOCUMENTS_MISMATCH
    return None


def customs_destination_matches(ctx: Context, inv: Invoice) -> Reason | None:
    # Goods that went to another country than the buyer's were not sold to this buyer.
    record = _customs_record(ctx, inv)
    if record and record.destination_country != ctx.application.buyer.country:
        return Reason.TRADE_DOCUMENTS_MISMATCH
    return None


def customs_currency_matches(ctx: Context, inv: Invoice) -> Reason | None:
    record = _customs_record(ctx, inv)
    if record and record.currency != inv.currency:
        return Reason.TRADE_DOCUMENTS_MISMATCH
    return None


def customs_amount_matches(ctx: Context, inv: Invoice) -> Reason | None:
    """The invoices naming one declaration add up to its declared amount, within the
    tolerance (a share of the declared amount; exactly at it still matches)."""
    record = _customs_record(ctx, inv)
    if record is None or record.currency != inv.currency:
        return None  # another currency is customs_currency_matches' to report
    invoiced = sum(
        (
            i.amount
            for i in ctx.application.invoices
            if i.customs_declaration == record.declaration_number
        ),
        Decimal(0),
    )
    if abs(invoiced - record.amount) > record.amount * ctx.customs.tolerance:
        return Reason.TRADE_DOCUMENTS_MISMATCH
    return None


CUSTOMS_CHECKS: tuple[Check, ...] = (
    customs_record_found,
    customs_exporter_matches,
    customs_destination_matches,
    customs_currency_matches,
    customs_amount_matches,
)

# The order in which checks run and are reported.
INVOICE_CHECKS: tuple[Check, ...] = (
    policy_found,
    policy_in_force,
    premium_paid,
    limit_found,
    limit_in_force,
    buyer_matches,
    country_covered,
    currency_matches,
    shipment_after_limit,
    credit_period_within_limit,
    shipment_declared,
    declared_in_window,
    declared_shipment_matches,
    receivable_not_matured,
    buyer_not_overdue,
    *CUSTOMS_CHECKS,
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of the cover checks over every invoice."""

    limit: BuyerLimit | None
    failures: list[dict[str, str]]  # one entry per failed (invoice, check)
    warnings: list[dict[str, str]] = field(default_factory=list)  # recorded, never refused

    @property
    def checks(self) -> dict[str, str]:
        """Check name -> "ok" or the first reason it gave."""
        return invoice_check_table(self.failures)

    @property
    def reasons(self) -> list[str]:
        seen: list[str] = []
        for failure in self.failures:
            if failure["reason"] not in seen:
                seen.append(failure["reason"])
        return seen

    @property
    def passed(self) -> bool:
        return not self.failures


def verify_cover(
    app: Application, facts: CoverFacts, today: date, customs: CustomsFacts = NO_CUSTOMS
) -> Verdict:
    """Run every invoice check; the limit-room check runs atomically at reservation."""
    limit = choose_limit(app, facts.limits, today)
    ctx = Context(app, facts, today, limit, customs)
    failures = [
        {"invoice": inv.number, "check": check.__name__, "reason": str(reason)}
        for inv in app.invoices
        for check in INVOICE_CHECKS
        if (reason := check(ctx, inv)) is not None
    ]
    return Verdict(limit, failures, buyer_warnings(app, limit))


LIMIT_ROOM_CHECK = "limit_has_room"  # run atomically when the limit is reserved
WHITELIST_CHECK = "exporter_whitelisted"


def invoice_check_table(failures: list[dict[str, str]]) -> dict[str, str]:
    """Every invoice check with "ok" or the first reason it gave, from the failures alone."""
    table = {check.__name__: "ok" for check in INVOICE_CHECKS}
    for failure in failures:
        if table.get(failure["check"]) == "ok":
            table[failure["check"]] = failure["reason"]
    return table


def check_results(deal: Deal) -> dict[str, str]:
    """Every check's outcome ("ok", a reason code, or "not_run"), derived from the stored
    failures and whitelist status: storing only failures keeps a deal small."""
    whitelist = deal.get("whitelist")
    if whitelist is None:
        return {}  # not verified yet
    failures = deal.get("failures", [])
    results = invoice_check_table(failures)
    room = [f["reason"] for f in failures if f["check"] == LIMIT_ROOM_CHECK]
    failed_on_cover = any(v != "ok" for v in results.values())
    if not any(inv.get("customs_declaration") for inv in deal.get("invoices", [])):
        # No declaration named: the customs checks had nothing to look at.
        for check in CUSTOMS_CHECKS:
            results.pop(check.__name__, None)
    elif deal.fields.get("customs_unchecked"):
        # The customs feed was not in use (settings.customs_check): nothing was compared.
        results.update(dict.fromkeys((c.__name__ for c in CUSTOMS_CHECKS), "not_run"))
    results[LIMIT_ROOM_CHECK] = room[0] if room else ("not_run" if failed_on_cover else "ok")
    results[WHITELIST_CHECK] = whitelist.get("reason") or "ok"
    return results


def limit_room(limit: BuyerLimit, reserved: Decimal) -> Decimal:
    return max(limit.amount - reserved, Decimal("0"))


@dataclass(frozen=True)
class WhitelistStatus:
    """Whether the exporter is on an active unified-insurance list (统保名单), and which."""

    reason: Reason | None
    programmes: tuple[str, ...]

    @property
    def whitelisted(self) -> bool:
        return self.reason is None

    def to_wire(self) -> dict:
        return {
            "whitelisted": self.whitelisted,
            "reason": str(self.reason) if self.reason else None,
            "programmes": list(self.programmes),
        }


def whitelist_status(lists: list[Whitelist], today: date) -> WhitelistStatus:
    """Active on some list, or WHITELIST_EXPIRED if only on lapsed ones, or not whitelisted."""
    active = tuple(w.programme for w in lists if w.active_on(today))
    if active:
        return WhitelistStatus(None, active)
    lapsed = tuple(w.programme for w in lists if w.valid_to < today)
    if lapsed:
        return WhitelistStatus(Reason.WHITELIST_EXPIRED, lapsed)
    return WhitelistStatus(Reason.EXPORTER_NOT_WHITELISTED, ())


def cover_still_in_force(facts: CoverFacts, exposure: str, today: date) -> Reason | None:
    """At approval: the policy is still active and a limit of the deal's exposure (policy,
    buyer, currency) is in force: the one it reserved on, or one the insurer re-issued."""
    if facts.policy is None:
        return Reason.POLICY_NOT_FOUND
    if facts.policy.status != ACTIVE:
        return Reason.POLICY_INACTIVE
    same = [lim for lim in facts.limits if lim.exposure == exposure]
    if not same:
        return Reason.LIMIT_NOT_FOUND
    if not any(lim.in_force_on(today) for lim in same):
        return Reason.LIMIT_INACTIVE
    return None
