"""The exporter portal's landing page: the exporter's deals, newest first."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import current_user

from web.api import flow
from web.auth.session import role_required
from web.paging import PER_PAGE, page_number
from web.paging import last_page as pages_for
from web.portal import portal
from web.portal.deal_page import bank_names, exporter_uscc, with_bank
from web.words import exporter_state_words
from workflow import keys
from workflow.users import EXPORTER


@portal.get("/")
@role_required(EXPORTER)
def index() -> Any:
    """The exporter's deals, newest first, from its own index."""
    user = current_user.user
    uscc = exporter_uscc()
    page = page_number()
    total, deals = flow().store.page(keys.by_exporter(uscc), (page - 1) * PER_PAGE, PER_PAGE, True)
    names = bank_names({b for b in (with_bank(d) for d in deals) if b})
    rows = []
    for deal in deals:
        f = deal.fields
        bank_id = with_bank(deal)
        rows.append(
            {
                "id": deal.id,
                "created_at": f.get("created_at"),
                "buyer": deal.get("buyer") or {},
                "currency": f.get("currency", ""),
                "invoice_total": f.get("invoice_total"),
                "requested": f.get("requested_amount"),
                "approved": f.get("approved_amount") or None,
                "state": deal.state,
                "status": exporter_state_words(deal.state),
                "bank": names.get(bank_id) if bank_id else None,
            }
        )
    last_page = pages_for(total, PER_PAGE)
    exporter = flow().reference.exporter(uscc)
    return render_template(
        "portal/index.html",
        user=user,
        exporter=exporter,
        rows=rows,
        page=page,
        last_page=last_page,
        total=total,
    )
