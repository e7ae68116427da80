"""Reference data and deal bodies at scale, for the benchmark and the chaos runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# A bench exporter of its own, so runs never collide with the demo data set.
EXPORTER = "91320500MA1KL8M9ND"
POLICY = "STRESS-POL-1"
EXPORTER_TOKEN = "stress-exporter-token-0001"
BANKS = ("STRESS-BANK-A", "STRESS-BANK-B", "STRESS-BANK-C")
BANK_TOKENS = {bank: f"stress-token-{bank.lower()}" for bank in BANKS}
BUYERS = 20
TIGHT_BUYER = "TIGHT-0001"  # a buyer whose limit fits only a known number of deals
TIGHT_LIMIT = "200000.00"



def _day(offset: int) -> str:
    """An ISO date ``offset`` days from today (UTC), so the data set is valid on any day."""
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


SHIPPED, DECLARED, ISSUED, DUE = _day(-14), _day(-13), _day(-23), _day(46)
START, END = _day(-365), _day(4 * 365)


def buyer_of(index: int) -> str:
    return f"BUYER-{index % BUYERS:04d}"


def invoice_number(index: int) -> str:
    return f"ST-{index:07d}"


def reference(invoices: int, tight_invoices: int = 0) -> dict[str, Any]:
    """Policy, roomy buyer limits, ``invoices`` declared invoices, three banks, tokens; plus
    ``tight_invoices`` declared invoices to TIGHT_BUYER, whose limit is TIGHT_LIMIT."""
    limits = [_limit(f"STRESS-LIM-{b:04d}", f"BUYER-{b:04d}", "900000000000.00")
              for b in range(BUYERS)]
    limits.append(_limit("STRESS-LIM-TIGHT", TIGHT_BUYER, TIGHT_LIMIT))
    declarations = [_declaration(buyer_of(i), invoice_number(i)) for i in range(invoices)]
    declarations += [_declaration(TIGHT_BUYER, f"TIGHT-{i:06d}") for i in range(tight_invoices)]
    return {
        "policies": [{
            "policy_no": POLICY, "exporter_uscc": EXPORTER, "status": "active",
            "start": START, "end": END, "coverage_ratio": "0.90",
            "premium_paid": True, "declaration_window_days": 15, "max_credit_days": 180,
        }],
        "limits": limits,
        "declarations": declarations,
        "banks": [{
            "bank_id": bank, "name": f"Stress bank {bank[-1]}", "currencies": ["USD"],
            "min_amount": "1.00", "max_amount": "900000000.00", "max_tenor_days": 180,
            "advance_rate": "0.90", "annual_rate": f"0.04{n}0", "requires_whitelist": False,
            "decision_hours": "240",
        } for n, bank in enumerate(BANKS)],
        # A token's exporter must be in the reference data, as for `xinbao token add`.
        "exporters": [{"uscc": EXPORTER, "name": "Stress exporter", "region": "Suzhou"}],
        "tokens": [{"token": EXPORTER_TOKEN, "exporter_uscc": EXPORTER}]
        + [{"token": token, "bank_id": bank} for bank, token in BANK_TOKENS.items()],
    }


def _limit(limit_id: str, buyer: str, amount: str) -> dict[str, Any]:
    return {"limit_id": limit_id, "policy_no": POLICY, "buyer_code": buyer,
            "buyer_name": f"Buyer {buyer}", "country": "DE", "currency": "USD",
            "amount": amount, "max_credit_days": 120, "effective": START,
            "expiry": END, "status": "active"}


def _declaration(buyer: str, number: str) -> dict[str, Any]:
    return {"policy_no": POLICY, "buyer_code": buyer, "invoice_number": number,
            "shipment_date": SHIPPED, "declared_on": DECLARED}


def write_reference(path: Path, invoices: int, tight_invoices: int = 0) -> Path:
    path.write_text(json.dumps(reference(invoices, tight_invoices)))
    return path


def deal_body(index: int, amount: str = "10000.00", buyer: str | None = None,
              number: str | None = None) -> dict[str, Any]:
    """A valid application for declared invoice ``index`` (or an explicit buyer/number)."""
    return {
        "exporter_uscc": EXPORTER,
        "policy_no": POLICY,
        "buyer": {"code": buyer or buyer_of(index), "name": "Stress buyer", "country": "DE"},
        "invoices": [{"number": number or invoice_number(index), "amount": amount,
                      "currency": "USD", "issue_date": ISSUED, "shipment_date": SHIPPED,
                      "due_date": DUE}],
        "requested_amount": amount,
        "currency": "USD",
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def invoice_indexes(start: int, deal: int, invoices: int) -> list[int]:
    """The declared invoice indexes of deal ``deal`` (0, 1, ...) of ``invoices`` invoices each,
    counted from ``start`` (a multiple of BUYERS): all of one buyer, none shared by two deals
    of the series, 20 deals spanning ``BUYERS * invoices`` indexes."""
    block, buyer = divmod(deal, BUYERS)
    return [start + BUYERS * (block * invoices + j) + buyer for j in range(invoices)]


def multi_invoice_body(indexes: list[int]) -> dict[str, Any]:
    """A valid application for the declared invoices ``indexes`` (all of one buyer)."""
    body = deal_body(indexes[0])
    body["invoices"] = [deal_body(i)["invoices"][0] for i in indexes]
    body["requested_amount"] = f"{10000 * len(indexes)}.00"
    return body
