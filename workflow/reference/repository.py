"""Reading reference data back from Redis as records, batching round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from workflow import keys
from workflow.reference.customs import decode_record
from workflow.reference.records import (
    Bank,
    BuyerLimit,
    CustomsRecord,
    Declaration,
    Exporter,
    Overdue,
    Policy,
    Whitelist,
    as_text,
)
from workflow.tokens import (
    Principal,
    PrincipalCache,
    lookup,
)


def _dec(raw: dict, *names: str) -> None:
    for name in names:
        raw[name] = Decimal(raw[name])


def _dates(raw: dict, *names: str) -> None:
    for name in names:
        raw[name] = date.fromisoformat(raw[name])


def _loads(raw: str | None) -> dict | None:
    return None if raw is None else json.loads(raw)


def _policy(raw: dict | None) -> Policy | None:
    if raw is None:
        return None
    _dec(raw, "coverage_ratio")
    _dates(raw, "start", "end")
    raw["covered_countries"] = tuple(raw["covered_countries"])
    raw["excluded_countries"] = tuple(raw["excluded_countries"])
    return Policy(**raw)


def _limit(raw: dict | None) -> BuyerLimit | None:
    if raw is None:
        return None
    _dec(raw, "amount")
    _dates(raw, "effective", "expiry")
    return BuyerLimit(**raw)


def _declaration(raw: dict | None) -> Declaration | None:
    if raw is None:
        return None
    _dates(raw, "shipment_date", "declared_on")
    return Declaration(**raw)


def _overdue(raw: dict) -> Overdue:
    _dates(raw, "reported_on")
    return Overdue(**raw)


def _bank(raw: dict | None) -> Bank | None:
    if raw is None:
        return None
    _dec(raw, "min_amount", "max_amount", "advance_rate", "annual_rate", "decision_hours")
    if raw.get("second_approval_above") is not None:
        _dec(raw, "second_approval_above")
    raw["currencies"] = tuple(raw["currencies"])
    return Bank(**raw)


_WHITELIST_FIELDS = ("programme", "region", "valid_from", "valid_to")


def _whitelist(raw: dict | None) -> Whitelist | None:
    if raw is None:
        return None
    # An imported programme's record also says where it came from (version, file, counts).
    raw = {name: raw[name] for name in _WHITELIST_FIELDS}
    _dates(raw, "valid_from", "valid_to")
    return Whitelist(**raw)


@dataclass(frozen=True)
class CoverFacts:
    """What the insurer says about one application: policy, buyer limits, declarations."""

    policy: Policy | None
    limits: list[BuyerLimit]
    declarations: dict[str, Declaration | None]
    overdues: list[Overdue]


class ReferenceRepository:
    """Reads reference data back from Redis as domain objects, batching round trips."""

    def __init__(self, redis: Any):
        self.redis = redis
        self.principals = PrincipalCache(redis)

    def _get(self, key: str) -> dict | None:
        return _loads(self.redis.get(key))

    def _mget(self, keys_: list[str]) -> list[dict | None]:
        return [_loads(raw) for raw in self.redis.mget(keys_)] if keys_ else []

    def policy(self, policy_no: str) -> Policy | None:
        return _policy(self._get(keys.policy(policy_no)))

    def limits_for(self, policy_no: str, buyer_code: str) -> list[BuyerLimit]:
        members = self.redis.smembers(keys.limits_for(policy_no, buyer_code))
        ids = sorted(as_text(i) for i in members)
        return self._limits(ids)

    def _limits(self, ids: list[str]) -> list[BuyerLimit]:
        found = (_limit(raw) for raw in self._mget([keys.limit(i) for i in ids]))
        return [lim for lim in found if lim is not None]

    def policies_of(self, uscc: str) -> list[Policy]:
        """The policies held by exporter ``uscc``, by number (for its application form):
        read through the exporter's own list, whatever the size of the insurer's book."""
        numbers = json.loads(self.redis.hget(keys.policies_by_exporter(), uscc) or "[]")
        found = (_policy(raw) for raw in self._mget([keys.policy(n) for n in numbers]))
        return [p for p in found if p is not None and p.exporter_uscc == uscc]

    def limits_under(self, policy_nos: list[str]) -> list[BuyerLimit]:
        """Every buyer limit loaded under these policies, by policy, buyer and limit id."""
        wanted = sorted(set(policy_nos))
        if not wanted:
            return []
        lists = self.redis.hmget(keys.limits_by_policy(), wanted)
        ids = sorted({i for raw in lists if raw for i in json.loads(raw)})
        found = [lim for lim in self._limits(ids) if lim.policy_no in wanted]
        return sorted(found, key=lambda lim: (lim.policy_no, lim.buyer_code, lim.limit_id))

    def limit(self, limit_id: str) -> BuyerLimit | None:
        return _limit(self._get(keys.limit(limit_id)))

    def declaration(self, policy_no: str, buyer_code: str, invoice: str) -> Declaration | None:
        return _declaration(self._get(keys.declaration(policy_no, buyer_code, invoice)))

    def overdues(self, policy_no: str, buyer_code: str) -> list[Overdue]:
        return [
            _overdue(json.loads(raw))
            for raw in self.redis.hvals(keys.overdues(policy_no, buyer_code))
        ]

    def cover_facts(self, policy_no: str, buyer_code: str, invoices: list[str]) -> CoverFacts:
        """Policy, buyer limits, declarations of ``invoices`` and overdue reports, batched."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.policy(policy_no))
        pipe.smembers(keys.limits_for(policy_no, buyer_code))
        pipe.hvals(keys.overdues(policy_no, buyer_code))
        pipe.mget([keys.declaration(policy_no, buyer_code, n) for n in invoices])
        policy, limit_ids, overdues, declarations = pipe.execute()
        return CoverFacts(
            policy=_policy(_loads(policy)),
            limits=self._limits(sorted(as_text(i) for i in limit_ids)),
            declarations={
                n: _declaration(_loads(raw)) for n, raw in zip(invoices, declarations, strict=True)
            },
            overdues=[_overdue(json.loads(raw)) for raw in overdues],
        )

    def declarations(
        self, policy_no: str, buyer_code: str, invoices: list[str]
    ) -> dict[str, Declaration | None]:
        """The insurer's shipment declarations of these invoices (one MGET)."""
        found = self.declarations_many([(policy_no, buyer_code, invoices)])
        return {n: found[(policy_no, buyer_code, n)] for n in invoices}

    def declarations_many(
        self, asked: list[tuple[str, str, list[str]]]
    ) -> dict[tuple[str, str, str], Declaration | None]:
        """The declarations of several deals' invoices, each ``(policy_no, buyer_code,
        invoices)``, in one MGET: by (policy_no, buyer_code, invoice number)."""
        wanted = [(p, b, n) for p, b, numbers in asked for n in numbers]
        if not wanted:
            return {}
        raws = self.redis.mget([keys.declaration(p, b, n) for p, b, n in wanted])
        return {w: _declaration(_loads(raw)) for w, raw in zip(wanted, raws, strict=True)}

    def whitelists_of(self, uscc: str) -> list[Whitelist]:
        """The programmes whose list names this exporter (members are not loaded)."""
        programmes = sorted(as_text(p) for p in self.redis.smembers(keys.whitelists()))
        pipe = self.redis.pipeline(transaction=False)
        for programme in programmes:
            pipe.sismember(keys.whitelist_members(programme), uscc)
            pipe.get(keys.whitelist(programme))
        answers = pipe.execute()
        found = []
        for member, raw in zip(answers[::2], answers[1::2], strict=True):
            whitelist = _whitelist(_loads(raw)) if member else None
            if whitelist is not None:
                found.append(whitelist)
        return found

    def customs_records(self, numbers: list[str]) -> dict[str, CustomsRecord | None]:
        """The customs export records of these declaration numbers (None: no record)."""
        if not numbers:
            return {}
        raws = self.redis.hmget(keys.customs_records(), numbers)
        return {n: decode_record(n, raw) for n, raw in zip(numbers, raws, strict=True)}

    def customs_feed_loaded(self) -> bool:
        """Whether customs export records were ever imported (``xinbao customs import``)."""
        return bool(self.redis.exists(keys.customs_feed()))

    def banks(self) -> list[Bank]:
        ids = sorted(as_text(i) for i in self.redis.smembers(keys.banks()))
        found = (_bank(raw) for raw in self._mget([keys.bank(i) for i in ids]))
        return [b for b in found if b is not None]

    def bank(self, bank_id: str) -> Bank | None:
        return _bank(self._get(keys.bank(bank_id)))

    def exporter(self, uscc: str) -> Exporter | None:
        raw = self._get(keys.exporter(uscc))
        return None if raw is None else Exporter(**raw)

    def exporters(self, usccs: list[str]) -> dict[str, Exporter | None]:
        """Several exporters in one round trip (a page of deals names many)."""
        raws = self._mget([keys.exporter(u) for u in usccs])
        pairs = zip(usccs, raws, strict=True)
        return {u: None if raw is None else Exporter(**raw) for u, raw in pairs}

    def principal(self, token: str) -> Principal | None:
        return lookup(self.redis, token)
