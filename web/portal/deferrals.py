"""The exporter's view of the deferrals its bank asked: the dates and the insurer's answer,
never the bank's officer, references or notes."""

from __future__ import annotations

from typing import Any

from web.words import reason_words
from workflow.deal import Deal


def exporter_deferrals(deal: Deal) -> list[dict[str, Any]]:
    """Each deferral asked on the deal, in the order asked; every field is picked by name, so
    a field the workflow adds later is not shown by accident."""
    return [
        {
            "asked_on": record.get("asked_on"),
            "from_due_date": record.get("from_due_date"),
            "new_due_date": record.get("new_due_date"),
            "granted": bool(record.get("granted")),
            "reasons": [(code, reason_words(code)) for code in record.get("reasons") or []],
        }
        for record in deal.get("deferrals") or []
    ]


__all__ = ["exporter_deferrals"]
