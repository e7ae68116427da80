"""The deal aggregate: an application for financing and everything decided about it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.identifiers import bill_of_lading_key
from workflow.money import fmt
from workflow.states import State


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Invoice:
    number: str
    amount: Decimal
    currency: str
    issue_date: date
    shipment_date: date
    due_date: date
    # Trade documents (四流合一): the bill of lading and the customs export declaration
    # (报关单号) the goods left under; optional unless a bank requires them.
    bill_of_lading: str | None = None
    customs_declaration: str | None = None

    def to_wire(self) -> dict[str, str]:
        wire = {
            "number": self.number,
            "amount": fmt(self.amount),
            "currency": self.currency,
            "issue_date": self.issue_date.isoformat(),
            "shipment_date": self.shipment_date.isoformat(),
            "due_date": self.due_date.isoformat(),
        }
        # Absent rather than null: a request without documents keeps the digest it had.
        if self.bill_of_lading:
            wire["bill_of_lading"] = self.bill_of_lading
        if self.customs_declaration:
            wire["customs_declaration"] = self.customs_declaration
        return wire

    @property
    def has_trade_documents(self) -> bool:
        return bool(self.bill_of_lading and self.customs_declaration)

    @classmethod
    def from_wire(cls, raw: dict[str, str]) -> Invoice:
        return cls(
            number=raw["number"],
            amount=Decimal(raw["amount"]),
            currency=raw["currency"],
            issue_date=date.fromisoformat(raw["issue_date"]),
            shipment_date=date.fromisoformat(raw["shipment_date"]),
            due_date=date.fromisoformat(raw["due_date"]),
            bill_of_lading=raw.get("bill_of_lading") or None,
            customs_declaration=raw.get("customs_declaration") or None,
        )


@dataclass(frozen=True)
class Buyer:
    code: str
    name: str
    country: str


@dataclass(frozen=True)
class Application:
    """What an exporter asks for: validated at the edge, immutable afterwards."""

    exporter_uscc: str
    policy_no: str
    buyer: Buyer
    invoices: tuple[Invoice, ...]
    requested_amount: Decimal
    currency: str

    @property
    def invoice_total(self) -> Decimal:
        return sum((inv.amount for inv in self.invoices), Decimal("0"))

    @property
    def has_trade_documents(self) -> bool:
        """Every invoice names its bill of lading and its customs declaration."""
        return all(inv.has_trade_documents for inv in self.invoices)

    def document_locks(self) -> dict[str, tuple[str, str, str]]:
        """The live-deal lock key of each trade document the invoices name -> (document kind,
        number as given, invoice number). Invoices sharing a document share its lock."""
        locks: dict[str, tuple[str, str, str]] = {}
        for inv in self.invoices:
            if inv.bill_of_lading:
                key = keys.bill_of_lading(bill_of_lading_key(inv.bill_of_lading))
                locks.setdefault(key, ("bill_of_lading", inv.bill_of_lading, inv.number))
            if inv.customs_declaration:
                key = keys.customs_declaration(inv.customs_declaration)
                locks.setdefault(key, ("customs_declaration", inv.customs_declaration, inv.number))
        return locks

    def fingerprint(self) -> str:
        """A stable digest of the request, to tell an idempotent retry from a reused key."""
        import hashlib

        body = json.dumps(application_fields(self), sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def application_fields(app: Application) -> dict[str, Any]:
    """The application as deal fields (JSON-able values; ``encode_fields`` stores them)."""
    buyer = app.buyer
    return {
        "exporter_uscc": app.exporter_uscc,
        "policy_no": app.policy_no,
        "buyer": {"code": buyer.code, "name": buyer.name, "country": buyer.country},
        "invoices": [inv.to_wire() for inv in app.invoices],
        "requested_amount": fmt(app.requested_amount),
        "currency": app.currency,
    }


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# Fields stored as JSON in the deal hash; the rest are plain strings.
JSON_FIELDS = frozenset(
    {
        "buyer",
        "invoices",
        "checks",
        "failures",
        "reasons",
        "whitelist",
        "offered_banks",
        "first_approval",
        "returned_approval",
        "loan",
        "repayments",
        "missed_deadlines",
        "claim",
        "claim_decision",
        "recoveries",
        "pricing",
        "decision",
        "cancellation",
        "routing_notes",
        "warnings",
        "deferrals",
        "pending_disbursement",
        "returned_disbursement",
    }
)


@dataclass
class Deal:
    """A deal as stored: its flat field map plus typed accessors for the parts code reads."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.fields["id"]

    @property
    def state(self) -> State:
        return State(self.fields["state"])

    @property
    def version(self) -> int:
        return int(self.fields.get("version", "0"))

    def get(self, name: str, default: Any = None) -> Any:
        raw = self.fields.get(name)
        if raw is None or raw == "":
            return default
        return json.loads(raw) if name in JSON_FIELDS else raw

    def decimal(self, name: str) -> Decimal | None:
        raw = self.fields.get(name)
        return None if raw in (None, "") else Decimal(raw)

    @property
    def application(self) -> Application:
        buyer = self.get("buyer")
        return Application(
            exporter_uscc=self.fields["exporter_uscc"],
            policy_no=self.fields["policy_no"],
            buyer=Buyer(buyer["code"], buyer["name"], buyer["country"]),
            invoices=tuple(Invoice.from_wire(i) for i in self.get("invoices")),
            requested_amount=Decimal(self.fields["requested_amount"]),
            currency=self.fields["currency"],
        )

    @property
    def bank_id(self) -> str | None:
        return self.fields.get("bank_id") or None

    @property
    def offered_banks(self) -> list[str]:
        return self.get("offered_banks", [])


def encode_fields(changes: dict[str, Any]) -> dict[str, str]:
    """Turn typed changes into the strings stored in the hash ("" clears a field)."""
    out: dict[str, str] = {}
    for name, value in changes.items():
        if value is None:
            out[name] = ""
        elif name in JSON_FIELDS:
            out[name] = _dump(value)
        elif isinstance(value, Decimal):
            out[name] = fmt(value)
        elif isinstance(value, datetime):
            out[name] = iso(value)
        elif isinstance(value, date):
            out[name] = value.isoformat()
        else:
            out[name] = str(value)
    return out


# Deal fields every event implies by its header, so its "set" need not repeat them.
# ``state_at`` is when the deal entered its current state (events in the same state leave it).
DERIVED_FIELDS = frozenset({"state", "updated_at", "created_at", "state_at"})


def rebuild(events: list[dict[str, Any]]) -> dict[str, str]:
    """The deal's field map rebuilt from its event log alone."""
    fields: dict[str, str] = {}
    for event in events:
        fields.update(event.get("set", {}))
        fields["state"] = event["to"]
        fields["version"] = str(event["v"])
        fields["updated_at"] = event["at"]
        if event.get("from") != event["to"]:
            fields["state_at"] = event["at"]
        if event["v"] == 1:
            fields["created_at"] = event["at"]
    return fields
