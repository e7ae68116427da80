"""The bench's naive baseline: the plain Flask + Celery app of Xinbao's shape (issue 11).

What a competent developer writes first, following pallets/flask ``examples/celery``: an app
factory, a marshmallow schema of the same request body Xinbao takes (same field rules: USCC
check character, ISO codes, decimal strings, dates), the bearer token looked up in the same
Redis key, the deal stored as one JSON string with SET, and one Celery task per deal that
reads the reference keys Xinbao's verification reads (policy, buyer limits, declarations,
overdues, whitelists, banks) one plain command at a time and writes the result back with SET.
No atomicity, no events, no idempotency, no indexes, no sweeper. Same worker settings as
Xinbao (``bare_celery.worker_config``); gunicorn and worker counts come from the bench.

    gunicorn 'tests.stress.naive_app:create_app()'
    celery -A tests.stress.naive_worker worker -Q naive
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import redis
from celery import Celery, Task, shared_task
from flask import Flask, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tests.stress import bare_celery
from workflow import keys
from workflow.identifiers import validate_code, validate_country, validate_currency, validate_uscc
from workflow.settings import load_settings

QUEUE = "naive"
TASK = "naive.verify"
PENDING, REJECTED = "pending_bank", "rejected"


def deal_key(deal_id: str) -> str:
    return f"naive:deal:{deal_id}"


class BuyerSchema(Schema):
    code = fields.String(required=True, validate=validate_code)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(required=True, validate=validate_country)


class InvoiceSchema(Schema):
    number = fields.String(required=True, validate=validate_code)
    amount = fields.Decimal(
        required=True, as_string=True, places=2, validate=validate.Range(min=Decimal("0.01"))
    )
    currency = fields.String(required=True, validate=validate_currency)
    issue_date = fields.Date(required=True)
    shipment_date = fields.Date(required=True)
    due_date = fields.Date(required=True)

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data["due_date"] <= data["shipment_date"]:
            raise ValidationError("must be after shipment_date", "due_date")


class DealSchema(Schema):
    exporter_uscc = fields.String(required=True, validate=validate_uscc)
    policy_no = fields.String(required=True, validate=validate_code)
    buyer = fields.Nested(BuyerSchema, required=True)
    invoices = fields.List(
        fields.Nested(InvoiceSchema), required=True, validate=validate.Length(min=1, max=50)
    )
    requested_amount = fields.Decimal(
        required=True, as_string=True, places=2, validate=validate.Range(min=Decimal("0.01"))
    )
    currency = fields.String(required=True, validate=validate_currency)

    @validates_schema
    def _total(self, data: dict, **_: Any) -> None:
        if data["requested_amount"] > sum(inv["amount"] for inv in data["invoices"]):
            raise ValidationError("must not exceed the invoices' total", "requested_amount")


deal_schema = DealSchema()


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented pattern: tasks run inside the app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["CELERY"] = bare_celery.worker_config(QUEUE)
    app.extensions["redis"] = redis.Redis.from_url(load_settings().redis_url, decode_responses=True)
    celery_init_app(app)

    @app.post("/api/v1/deals")
    def submit() -> Any:
        r = current_app.extensions["redis"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        raw = r.get(keys.token(hashlib.sha256(token.encode()).hexdigest()))
        if raw is None:
            return jsonify(error="unknown token"), 401
        try:
            deal = deal_schema.dump(deal_schema.load(request.get_json()))
        except ValidationError as exc:
            return jsonify(errors=exc.messages), 422
        if json.loads(raw) != {"role": "exporter", "subject": deal["exporter_uscc"]}:
            return jsonify(error="not this exporter's token"), 403
        deal_id = uuid.uuid4().hex
        deal.update(id=deal_id, state="submitted", submitted_at=time.time())
        r.set(deal_key(deal_id), json.dumps(deal))
        verify.delay(deal_id)
        return jsonify(id=deal_id, state="submitted"), 202

    return app


def _json(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


@shared_task(name=TASK)
def verify(deal_id: str) -> str:
    """Read the reference data, decide, write the deal back."""
    r = current_app.extensions["redis"]
    deal = json.loads(r.get(deal_key(deal_id)))
    policy_no, buyer = deal["policy_no"], deal["buyer"]["code"]
    amount = Decimal(deal["requested_amount"])
    reasons = []
    policy = _json(r.get(keys.policy(policy_no)))
    if policy is None or policy["status"] != "active" or not policy["premium_paid"]:
        reasons.append("POLICY_INACTIVE")
    limits = [
        _json(r.get(keys.limit(i))) for i in sorted(r.smembers(keys.limits_for(policy_no, buyer)))
    ]
    if not any(
        lim and lim["currency"] == deal["currency"] and Decimal(lim["amount"]) >= amount
        for lim in limits
    ):
        reasons.append("LIMIT_INSUFFICIENT")
    for invoice in deal["invoices"]:
        if r.get(keys.declaration(policy_no, buyer, invoice["number"])) is None:
            reasons.append("SHIPMENT_NOT_DECLARED")
    if r.hvals(keys.overdues(policy_no, buyer)):
        reasons.append("BUYER_OVERDUE")
    whitelists = [
        p
        for p in sorted(r.smembers(keys.whitelists()))
        if r.sismember(keys.whitelist_members(p), deal["exporter_uscc"])
    ]
    banks = [_json(r.get(keys.bank(b))) for b in sorted(r.smembers(keys.banks()))]
    eligible = [
        b
        for b in banks
        if b and deal["currency"] in b["currencies"] and (whitelists or not b["requires_whitelist"])
    ]
    if not eligible and not reasons:
        reasons.append("NO_ELIGIBLE_BANK")
    if reasons:
        deal.update(state=REJECTED, reasons=reasons)
    else:
        deal.update(state=PENDING, bank_id=eligible[0]["bank_id"])
    deal["verified_at"] = time.time()
    r.set(deal_key(deal_id), json.dumps(deal))
    return deal["state"]
