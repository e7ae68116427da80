"""marshmallow schemas of the JSON API: what requests must hold and what responses show.

One module a family: ``values`` (money, rates), ``application`` (a new deal), ``decisions``,
``servicing``, ``claims``, ``queries`` (list and feed query strings), ``responses`` (for the
OpenAPI document) and ``view`` (a deal as an exporter or a bank sees it). Every name is
imported here: ``from web.schemas import ...`` is how the API, the pages and the tests use them.
"""

from __future__ import annotations

from web.schemas.application import (
    MAX_INVOICES,
    BuyerSchema,
    DealRequestSchema,
    InvoiceSchema,
)
from web.schemas.claims import ClaimSchema, NoticeSchema, RecoverySchema
from web.schemas.decisions import CancelSchema, DecisionSchema, WithdrawSchema
from web.schemas.queries import FeedQuerySchema, ListQuerySchema
from web.schemas.responses import (
    AmountsSchema,
    BankOfferSchema,
    DealPageSchema,
    DealSchema,
    ErrorBodySchema,
    ErrorSchema,
    EventListSchema,
    EventSchema,
    FeedEventSchema,
    FeedPageSchema,
)
from web.schemas.servicing import (
    DeferralSchema,
    DisbursementCheckSchema,
    DisbursementSchema,
    RepaymentSchema,
)
from web.schemas.values import RATE_RE, Money, Rate, TrimmedString
from web.schemas.view import BANK_INTERNALS, deal_view, explained

__all__ = [
    "BANK_INTERNALS",
    "MAX_INVOICES",
    "RATE_RE",
    "AmountsSchema",
    "BankOfferSchema",
    "BuyerSchema",
    "CancelSchema",
    "ClaimSchema",
    "DealPageSchema",
    "DealRequestSchema",
    "DealSchema",
    "DecisionSchema",
    "DeferralSchema",
    "DisbursementCheckSchema",
    "DisbursementSchema",
    "ErrorBodySchema",
    "ErrorSchema",
    "EventListSchema",
    "EventSchema",
    "FeedEventSchema",
    "FeedPageSchema",
    "FeedQuerySchema",
    "InvoiceSchema",
    "ListQuerySchema",
    "Money",
    "NoticeSchema",
    "Rate",
    "RecoverySchema",
    "RepaymentSchema",
    "TrimmedString",
    "WithdrawSchema",
    "deal_view",
    "explained",
]
