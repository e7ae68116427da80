"""Review of the application form's reads: they grow with every exporter's reference data."""

from __future__ import annotations

import json

from tests.web.test_desk import page
from tests.web.test_portal import exporter
from workflow import keys
from workflow.reference.repository import ReferenceRepository

OTHERS = 3_000


def test_the_form_reads_only_the_exporters_own_policies(app, users_clock, monkeypatch):
    """``policies_of`` reads every policy in the system (SMEMBERS of all policy numbers, then
    MGET of all of them) and filters by USCC in Python; ``limits_under`` reads the set of every
    limit lookup of every policy. Each showing of the form, and each "add lines" / "remove",
    costs time in the number of policies of *all* exporters: with an insurer's book of tens
    of thousands of policies the exporter's form is slow, unlike the bank queue, which the
    issue wants as fast at 100,000 deals as at 10."""
    redis = app.extensions["redis"]
    template = json.loads(redis.get(keys.policy("SIN-2026-0002")))  # Dongfang's
    for n in range(OTHERS):
        number = f"OTHER-{n:05d}"
        redis.set(keys.policy(number), json.dumps({**template, "policy_no": number}))
        redis.sadd(keys.policies(), number)
    read: list[int] = []
    original = ReferenceRepository._mget

    def counting(self, keys_):
        read.append(len(keys_))
        return original(self, keys_)

    monkeypatch.setattr(ReferenceRepository, "_mget", counting)
    client = exporter(app, "haixin")
    read.clear()
    page(client, "/exporter/deals/new")
    assert sum(read) < 100, f"the form read {sum(read)} reference records for one exporter"
