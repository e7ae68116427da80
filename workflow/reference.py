"""Reference data: insurer policies and buyer limits, declarations, whitelists, banks, tokens.

Operators load it from one JSON file (``xinbao load FILE.json``); the whole file is validated
first and then written in one Redis transaction, so a bad file loads nothing. Each section the
file contains replaces that section whole; a section it leaves out is untouched.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from redis.exceptions import WatchError

from workflow import keys
from workflow.identifiers import (
    printable,
    validate_text,
)
from workflow.identifiers import (
    validate_country as _country,
)
from workflow.identifiers import (
    validate_currency as _currency,
)
from workflow.identifiers import (
    validate_uscc as _uscc,
)
from workflow.money import MAX_AMOUNT
from workflow.tokens import (
    BANK_ID_RE,
    Principal,
    lookup,
    revoked_digests,
    stage_tokens,
    token_digest,
    token_problem,
)

ACTIVE = "active"
STATUSES = ("active", "suspended", "cancelled", "expired")


@dataclass(frozen=True)
class Policy:
    policy_no: str
    exporter_uscc: str
    status: str
    start: date
    end: date
    coverage_ratio: Decimal
    premium_paid: bool
    declaration_window_days: int
    max_credit_days: int
    covered_countries: tuple[str, ...] = ()
    excluded_countries: tuple[str, ...] = ()
    insurer: str = "Sinosure"

    def in_force_on(self, day: date) -> bool:
        return self.status == ACTIVE and self.start <= day <= self.end

    def covers_country(self, country: str) -> bool:
        if country in self.excluded_countries:
            return False
        return not self.covered_countries or country in self.covered_countries


@dataclass(frozen=True)
class BuyerLimit:
    limit_id: str
    policy_no: str
    buyer_code: str
    buyer_name: str
    country: str
    currency: str
    amount: Decimal
    max_credit_days: int
    effective: date
    expiry: date
    status: str

    def in_force_on(self, day: date) -> bool:
        return self.status == ACTIVE and self.effective <= day <= self.expiry


@dataclass(frozen=True)
class Declaration:
    policy_no: str
    buyer_code: str
    invoice_number: str
    shipment_date: date
    declared_on: date


@dataclass(frozen=True)
class Overdue:
    policy_no: str
    buyer_code: str
    reported_on: date


@dataclass(frozen=True)
class Whitelist:
    programme: str
    region: str
    valid_from: date
    valid_to: date
    members: tuple[str, ...] = field(default=())

    def active_on(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True)
class Bank:
    bank_id: str
    name: str
    currencies: tuple[str, ...]
    min_amount: Decimal
    max_amount: Decimal
    max_tenor_days: int
    advance_rate: Decimal
    annual_rate: Decimal
    requires_whitelist: bool
    decision_hours: Decimal


@dataclass(frozen=True)
class Exporter:
    uscc: str
    name: str
    region: str


# --- the file's schemas -------------------------------------------------------------------


_ratio = validate.Range(min=Decimal("0"), max=Decimal("1"), min_inclusive=False)
_days = validate.Range(min=0, max=3650)
_positive = validate.Range(min=Decimal("0"), min_inclusive=False)
_nonneg = validate.Range(min=Decimal("0"))
_bank_id = validate.Regexp(BANK_ID_RE, error="use A-Z, 0-9, _ . -")
_required_str = {"required": True, "validate": [validate.Length(min=1, max=128), validate_text]}


def _money(minimum: Decimal, *, strict_min: bool) -> fields.Decimal:
    return fields.Decimal(
        required=True,
        places=2,
        allow_nan=False,
        validate=validate.Range(min=minimum, max=MAX_AMOUNT, min_inclusive=not strict_min),
    )


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class PolicySchema(_Strict):
    policy_no = fields.String(**_required_str)
    exporter_uscc = fields.String(required=True, validate=_uscc)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    coverage_ratio = fields.Decimal(required=True, validate=_ratio)
    premium_paid = fields.Boolean(required=True)
    declaration_window_days = fields.Integer(required=True, strict=True, validate=_days)
    max_credit_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    covered_countries = fields.List(fields.String(validate=_country), load_default=list)
    excluded_countries = fields.List(fields.String(validate=_country), load_default=list)
    insurer = fields.String(load_default="Sinosure")

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("end is before start", "end")
        if data.get("covered_countries") and data.get("excluded_countries"):
            raise ValidationError(
                "give covered_countries or excluded_countries, not both", "covered_countries"
            )

    @post_load
    def _make(self, data: dict, **_: Any) -> Policy:
        data["covered_countries"] = tuple(data["covered_countries"])
        data["excluded_countries"] = tuple(data["excluded_countries"])
        return Policy(**data)


class LimitSchema(_Strict):
    limit_id = fields.String(**_required_str)
    policy_no = fields.String(**_required_str)
    buyer_code = fields.String(**_required_str)
    buyer_name = fields.String(**_required_str)
    country = fields.String(required=True, validate=_country)
    currency = fields.String(required=True, validate=_currency)
    amount = _money(Decimal(0), strict_min=True)
    max_credit_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    effective = fields.Date(required=True)
    expiry = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data.get("effective") and data.get("expiry") and data["expiry"] < data["effective"]:
            raise ValidationError("expiry is before effective", "expiry")

    @post_load
    def _make(self, data: dict, **_: Any) -> BuyerLimit:
        return BuyerLimit(**data)


class DeclarationSchema(_Strict):
    policy_no = fields.String(**_required_str)
    buyer_code = fields.String(**_required_str)
    invoice_number = fields.String(**_required_str)
    shipment_date = fields.Date(required=True)
    declared_on = fields.Date(required=True)

    @post_load
    def _make(self, data: dict, **_: Any) -> Declaration:
        return Declaration(**data)


class OverdueSchema(_Strict):
    policy_no = fields.String(**_required_str)
    buyer_code = fields.String(**_required_str)
    reported_on = fields.Date(required=True)

    @post_load
    def _make(self, data: dict, **_: Any) -> Overdue:
        return Overdue(**data)


class WhitelistSchema(_Strict):
    programme = fields.String(**_required_str)
    region = fields.String(**_required_str)
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(required=True)
    members = fields.List(fields.String(validate=_uscc), required=True)

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if (
            data.get("valid_from")
            and data.get("valid_to")
            and data["valid_to"] < data["valid_from"]
        ):
            raise ValidationError("valid_to is before valid_from", "valid_to")

    @post_load
    def _make(self, data: dict, **_: Any) -> Whitelist:
        data["members"] = tuple(sorted(set(data["members"])))
        return Whitelist(**data)


class BankSchema(_Strict):
    bank_id = fields.String(required=True, validate=_bank_id)
    name = fields.String(**_required_str)
    currencies = fields.List(
        fields.String(validate=_currency), required=True, validate=validate.Length(min=1)
    )
    min_amount = _money(Decimal(0), strict_min=False)
    max_amount = _money(Decimal(0), strict_min=True)
    max_tenor_days = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=360)
    )
    advance_rate = fields.Decimal(required=True, validate=_ratio)
    annual_rate = fields.Decimal(
        required=True, validate=validate.Range(min=Decimal("0"), max=Decimal("1"))
    )
    requires_whitelist = fields.Boolean(required=True)
    decision_hours = fields.Decimal(
        required=True,
        validate=validate.Range(min=Decimal("0"), max=Decimal("720"), min_inclusive=False),
    )

    @validates_schema
    def _range(self, data: dict, **_: Any) -> None:
        lo, hi = data.get("min_amount"), data.get("max_amount")
        if lo is not None and hi is not None and hi < lo:
            raise ValidationError("max_amount is below min_amount", "max_amount")

    @post_load
    def _make(self, data: dict, **_: Any) -> Bank:
        data["currencies"] = tuple(data["currencies"])
        return Bank(**data)


class ExporterSchema(_Strict):
    uscc = fields.String(required=True, validate=_uscc)
    name = fields.String(**_required_str)
    region = fields.String(**_required_str)

    @post_load
    def _make(self, data: dict, **_: Any) -> Exporter:
        return Exporter(**data)


def _token(value: str) -> None:
    problem = token_problem(value)
    if problem:
        raise ValidationError(problem)


class TokenSchema(_Strict):
    token = fields.String(required=True, validate=_token)
    exporter_uscc = fields.String(validate=_uscc)
    bank_id = fields.String(validate=_bank_id)

    @validates_schema
    def _one_subject(self, data: dict, **_: Any) -> None:
        if ("exporter_uscc" in data) == ("bank_id" in data):
            raise ValidationError("give exactly one of exporter_uscc or bank_id", "token")

    @post_load
    def _make(self, data: dict, **_: Any) -> tuple[str, Principal]:
        if "bank_id" in data:
            return data["token"], Principal("bank", data["bank_id"])
        return data["token"], Principal("exporter", data["exporter_uscc"])


# Each section of the file: its schema and the field that names a record in error messages.
SECTIONS: dict[str, tuple[type[Schema], str]] = {
    "policies": (PolicySchema, "policy_no"),
    "limits": (LimitSchema, "limit_id"),
    "declarations": (DeclarationSchema, "invoice_number"),
    "overdues": (OverdueSchema, "buyer_code"),
    "whitelists": (WhitelistSchema, "programme"),
    "banks": (BankSchema, "bank_id"),
    "exporters": (ExporterSchema, "uscc"),
    "tokens": (TokenSchema, "token"),
}


class ReferenceFileError(ValueError):
    """A reference file is invalid; ``problems`` names each bad record and field."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ReferenceData:
    policies: list[Policy] = field(default_factory=list)
    limits: list[BuyerLimit] = field(default_factory=list)
    declarations: list[Declaration] = field(default_factory=list)
    overdues: list[Overdue] = field(default_factory=list)
    whitelists: list[Whitelist] = field(default_factory=list)
    banks: list[Bank] = field(default_factory=list)
    exporters: list[Exporter] = field(default_factory=list)
    tokens: list[tuple[str, Principal]] = field(default_factory=list)
    # The sections the file contains, each replaced whole on store; None (data built in code):
    # every section holding records.
    sections: frozenset[str] | None = None

    def replaced_sections(self) -> frozenset[str]:
        """The sections a store replaces whole (tokens are only ever added)."""
        named = self.sections
        if named is None:
            named = frozenset(s for s in SECTIONS if getattr(self, s))
        return named - {"tokens"}
    # Where the data came from, recorded with each token it registers ("file:demo.json").
    source: str = "file"


def _flatten(prefix: str, messages: Any) -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, sub in messages.items():
            name = key if key != "_schema" else ""
            out += _flatten(f"{prefix}.{name}" if name != "" else prefix, sub)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [p for m in messages for p in _flatten(prefix, m)]
    return [f"{prefix}: {messages}"]


def parse_reference(document: Any) -> ReferenceData:
    """Validate a whole reference document; raise ReferenceFileError listing every problem."""
    if not isinstance(document, dict):
        raise ReferenceFileError(["the file must hold one JSON object"])
    problems: list[str] = []
    unknown = sorted(set(document) - set(SECTIONS))
    problems += [f"{name}: unknown section" for name in unknown]
    data = ReferenceData(sections=frozenset(s for s in SECTIONS if s in document))
    for section, (schema_cls, id_field) in SECTIONS.items():
        records = document.get(section, [])
        if not isinstance(records, list):
            problems.append(f"{section}: must be a list")
            continue
        schema = schema_cls()
        for index, record in enumerate(records):
            label = f"{section}[{index}]"
            ident = record.get(id_field) if isinstance(record, dict) else None
            if isinstance(ident, str) and section != "tokens":
                label += f" ({id_field}={printable(ident[:64])})"
            try:
                getattr(data, section).append(schema.load(record))
            except ValidationError as exc:
                problems += _flatten(label, exc.messages)
    problems += _cross_check(data)
    if problems:
        # Unknown keys and bad values are echoed: keep the report printable whatever they hold.
        raise ReferenceFileError([printable(p) for p in problems])
    return data


def _cross_check(data: ReferenceData) -> list[str]:
    problems: list[str] = []
    for section, id_field in (
        ("policies", "policy_no"),
        ("limits", "limit_id"),
        ("banks", "bank_id"),
        ("exporters", "uscc"),
        ("whitelists", "programme"),
    ):
        seen: set[str] = set()
        for index, record in enumerate(getattr(data, section)):
            ident = getattr(record, id_field)
            if ident in seen:
                problems.append(f"{section}[{index}] ({id_field}={ident}): duplicate {id_field}")
            seen.add(ident)
    tokens_seen: set[str] = set()
    for index, (token, _) in enumerate(data.tokens):
        if token in tokens_seen:
            problems.append(f"tokens[{index}].token: duplicate token")
        tokens_seen.add(token)
    return problems


# Longer numbers are refused before they are converted: Python refuses ints over 4,300 digits
# with a ValueError, and no amount, rate or day count of the file needs more than a few.
MAX_NUMBER_CHARS = 40


class _BadJson(ValueError):
    """A JSON text Xinbao refuses though ``json`` would read it (or crash on it)."""


def _int(raw: str) -> int:
    if len(raw) > MAX_NUMBER_CHARS:
        raise _BadJson(f"a number has {len(raw)} digits (at most {MAX_NUMBER_CHARS})")
    return int(raw)


def _decimal(raw: str) -> Decimal:
    if len(raw) > MAX_NUMBER_CHARS:
        raise _BadJson(f"a number is {len(raw)} characters long (at most {MAX_NUMBER_CHARS})")
    # Decimal keeps every digit of a number written in the file (0.9 stays 0.9).
    return Decimal(raw)


def _constant(raw: str) -> Any:
    raise _BadJson(f"{raw} is not a JSON number")


def decode_reference_text(raw: bytes) -> str:
    """A reference file's bytes as text; ReferenceFileError unless they are UTF-8."""
    try:
        # An editor's byte-order mark is harmless: accept it.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReferenceFileError(
            [f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}"]
        ) from None


def parse_reference_json(text: str | bytes) -> ReferenceData:
    """Parse and validate a reference file's text (bytes must be UTF-8); see parse_reference."""
    if isinstance(text, bytes):
        text = decode_reference_text(text)
    duplicates: list[str] = []

    def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of two equal keys silently; a reference file must say one thing.
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(f"duplicate key {printable(key)!r} in one object")
            seen[key] = value
        return seen

    try:
        document = json.loads(
            text,
            parse_float=_decimal,
            parse_int=_int,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise ReferenceFileError([f"not valid JSON: {exc}"]) from None
    except _BadJson as exc:
        raise ReferenceFileError([f"not loaded as JSON: {exc}"]) from None
    except RecursionError:
        raise ReferenceFileError(["not loaded as JSON: nested too deeply"]) from None
    except ValueError as exc:
        raise ReferenceFileError([f"not valid JSON: {printable(str(exc))}"]) from None
    if duplicates:
        raise ReferenceFileError(sorted(set(duplicates)))
    return parse_reference(document)


# --- storage --------------------------------------------------------------------------------


def _encode(record: Any) -> str:
    return json.dumps(asdict(record), default=str, separators=(",", ":"), sort_keys=True)


# A concurrent load that changes a registry between our read and our EXEC makes us start over.
_LOAD_ATTEMPTS = 20

# The registry of each replaceable section: the set naming what the last load wrote.
_REGISTRIES: dict[str, tuple[str, ...]] = {
    "policies": (keys.policies(),),
    "limits": (keys.limits(), keys.limit_lookups()),
    "declarations": (keys.declarations(),),
    "overdues": (keys.overdue_keys(),),
    "whitelists": (keys.whitelists(),),
    "banks": (keys.banks(),),
    "exporters": (keys.exporters(),),
}


class ReferenceLoadConflict(RuntimeError):
    """Concurrent loads kept changing the reference data; nothing of this load was written."""


def store_reference(redis: Any, data: ReferenceData) -> dict[str, int]:
    """Write the file in one MULTI/EXEC; returns counts by section. Idempotent.

    Every section the file contains replaces that section whole: records it no longer names
    are removed with their lookup entries. What to remove is read from the section registries
    under WATCH, so a concurrent load that changes them makes this one retry rather than mix.
    Data loaded before the registries existed is only known through what the file names.
    """
    sections = data.replaced_sections()
    watched = [key for s in sorted(sections) for key in _REGISTRIES[s]]
    if "limits" in sections:
        # _previous reads these records too (for their old lookup sets).
        watched += [keys.limit(lim.limit_id) for lim in data.limits]
    if data.tokens:
        # A token revoked while this load runs must stay revoked.
        watched.append(keys.tokens_revoked())
    with redis.pipeline(transaction=True) as pipe:
        for _ in range(_LOAD_ATTEMPTS):
            try:
                if watched:
                    pipe.watch(*watched)
                previous = _previous(pipe, data, sections)
                revoked = revoked_digests(pipe, data.tokens)
                pipe.multi()
                _write(pipe, data, sections, previous)
                stage_tokens(pipe, data.tokens, data.source, skip=revoked)
                pipe.execute()
                break
            except WatchError:
                continue
        else:
            raise ReferenceLoadConflict(
                f"reference data changed under {_LOAD_ATTEMPTS} attempts; load again"
            )
    return {section: len(getattr(data, section)) for section in SECTIONS}


def _members(pipe: Any, key: str) -> set[str]:
    return {_s(m) for m in pipe.smembers(key)}


def _previous(pipe: Any, data: ReferenceData, sections: frozenset[str]) -> dict[str, set[str]]:
    """What the replaced sections hold now (read in immediate mode, under WATCH)."""
    before = {key: _members(pipe, key) for s in sections for key in _REGISTRIES[s]}
    if "limits" in sections:
        # A limit's own record says which lookup set holds it: this also finds the entry a
        # file's limit left behind when it was loaded before the registries existed.
        ids = sorted(before[keys.limits()] | {lim.limit_id for lim in data.limits})
        records = pipe.mget([keys.limit(i) for i in ids]) if ids else []
        for raw in records:
            if raw is not None:
                old = json.loads(raw)
                before[keys.limit_lookups()].add(
                    keys.limits_for(old["policy_no"], old["buyer_code"])
                )
    return before


def _replace_registry(pipe: Any, key: str, members: set[str]) -> None:
    pipe.delete(key)
    if members:
        pipe.sadd(key, *sorted(members))


def _write(
    pipe: Any, data: ReferenceData, sections: frozenset[str], before: dict[str, set[str]]
) -> None:
    """Queue the whole load: removals of what the file no longer names, then the upserts."""
    if "policies" in sections:
        names = {p.policy_no for p in data.policies}
        for gone in sorted(before[keys.policies()] - names):
            pipe.delete(keys.policy(gone))
        for p in data.policies:
            pipe.set(keys.policy(p.policy_no), _encode(p))
        _replace_registry(pipe, keys.policies(), names)
    if "limits" in sections:
        ids = {lim.limit_id for lim in data.limits}
        # Reservations (xb:limit:{id}:...) belong to live deals and stay; only the record goes.
        for gone in sorted(before[keys.limits()] - ids):
            pipe.delete(keys.limit(gone))
        # Lookup sets are rebuilt whole, so a limit moved to another buyer or policy leaves
        # nothing under its old (policy, buyer).
        for lookup in sorted(before[keys.limit_lookups()]):
            pipe.delete(lookup)
        lookups: set[str] = set()
        for lim in data.limits:
            lookup = keys.limits_for(lim.policy_no, lim.buyer_code)
            pipe.set(keys.limit(lim.limit_id), _encode(lim))
            pipe.sadd(lookup, lim.limit_id)
            lookups.add(lookup)
        _replace_registry(pipe, keys.limits(), ids)
        _replace_registry(pipe, keys.limit_lookups(), lookups)
    if "declarations" in sections:
        written = {
            keys.declaration(d.policy_no, d.buyer_code, d.invoice_number) for d in data.declarations
        }
        for gone in sorted(before[keys.declarations()] - written):
            pipe.delete(gone)
        for d in data.declarations:
            pipe.set(keys.declaration(d.policy_no, d.buyer_code, d.invoice_number), _encode(d))
        _replace_registry(pipe, keys.declarations(), written)
    if "overdues" in sections:
        hashes = {keys.overdues(o.policy_no, o.buyer_code) for o in data.overdues}
        # Each buyer's reports are rewritten whole: a report dropped from the file is gone.
        for key in sorted(before[keys.overdue_keys()] | hashes):
            pipe.delete(key)
        for o in data.overdues:
            pipe.hset(
                keys.overdues(o.policy_no, o.buyer_code), o.reported_on.isoformat(), _encode(o)
            )
        _replace_registry(pipe, keys.overdue_keys(), hashes)
    if "whitelists" in sections:
        programmes = {w.programme for w in data.whitelists}
        for gone in sorted(before[keys.whitelists()] - programmes):
            pipe.delete(keys.whitelist(gone), keys.whitelist_members(gone))
        for w in data.whitelists:
            meta = {k: v for k, v in asdict(w).items() if k != "members"}
            pipe.set(keys.whitelist(w.programme), json.dumps(meta, default=str))
            # A programme's list is replaced whole: a firm dropped from the list is no longer on it.
            pipe.delete(keys.whitelist_members(w.programme))
            if w.members:
                pipe.sadd(keys.whitelist_members(w.programme), *w.members)
        _replace_registry(pipe, keys.whitelists(), programmes)
    if "banks" in sections:
        bank_ids = {b.bank_id for b in data.banks}
        for gone in sorted(before[keys.banks()] - bank_ids):
            pipe.delete(keys.bank(gone))
        for b in data.banks:
            pipe.set(keys.bank(b.bank_id), _encode(b))
        _replace_registry(pipe, keys.banks(), bank_ids)
    if "exporters" in sections:
        usccs = {e.uscc for e in data.exporters}
        for gone in sorted(before[keys.exporters()] - usccs):
            pipe.delete(keys.exporter(gone))
        for e in data.exporters:
            pipe.set(keys.exporter(e.uscc), _encode(e))
        _replace_registry(pipe, keys.exporters(), usccs)


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
    raw["currencies"] = tuple(raw["currencies"])
    return Bank(**raw)


def _whitelist(raw: dict | None) -> Whitelist | None:
    if raw is None:
        return None
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

    def _get(self, key: str) -> dict | None:
        return _loads(self.redis.get(key))

    def _mget(self, keys_: list[str]) -> list[dict | None]:
        return [_loads(raw) for raw in self.redis.mget(keys_)] if keys_ else []

    def policy(self, policy_no: str) -> Policy | None:
        return _policy(self._get(keys.policy(policy_no)))

    def limits_for(self, policy_no: str, buyer_code: str) -> list[BuyerLimit]:
        ids = sorted(_s(i) for i in self.redis.smembers(keys.limits_for(policy_no, buyer_code)))
        return self._limits(ids)

    def _limits(self, ids: list[str]) -> list[BuyerLimit]:
        found = (_limit(raw) for raw in self._mget([keys.limit(i) for i in ids]))
        return [lim for lim in found if lim is not None]

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
            limits=self._limits(sorted(_s(i) for i in limit_ids)),
            declarations={
                n: _declaration(_loads(raw)) for n, raw in zip(invoices, declarations, strict=True)
            },
            overdues=[_overdue(json.loads(raw)) for raw in overdues],
        )

    def whitelists_of(self, uscc: str) -> list[Whitelist]:
        """The programmes whose list names this exporter (members are not loaded)."""
        programmes = sorted(_s(p) for p in self.redis.smembers(keys.whitelists()))
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

    def banks(self) -> list[Bank]:
        ids = sorted(_s(i) for i in self.redis.smembers(keys.banks()))
        found = (_bank(raw) for raw in self._mget([keys.bank(i) for i in ids]))
        return [b for b in found if b is not None]

    def bank(self, bank_id: str) -> Bank | None:
        return _bank(self._get(keys.bank(bank_id)))

    def exporter(self, uscc: str) -> Exporter | None:
        raw = self._get(keys.exporter(uscc))
        return None if raw is None else Exporter(**raw)

    def principal(self, token: str) -> Principal | None:
        return lookup(self.redis, token)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "Bank",
    "BuyerLimit",
    "Declaration",
    "Exporter",
    "Overdue",
    "Policy",
    "Principal",
    "ReferenceData",
    "ReferenceFileError",
    "ReferenceLoadConflict",
    "ReferenceRepository",
    "Whitelist",
    "decode_reference_text",
    "parse_reference",
    "parse_reference_json",
    "store_reference",
    "token_digest",
]
