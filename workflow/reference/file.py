"""The reference file: its sections, and parsing that lists every problem by record and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields

from workflow.identifiers import printable
from workflow.reference.records import (
    Bank,
    BuyerLimit,
    Declaration,
    Exporter,
    Overdue,
    Policy,
    Whitelist,
)
from workflow.reference.schemas import (
    BankSchema,
    DeclarationSchema,
    ExporterSchema,
    LimitSchema,
    OverdueSchema,
    PolicySchema,
    TokenSchema,
    UserSchema,
    WhitelistSchema,
)
from workflow.tokens import Principal
from workflow.users import UserSpec

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
    "users": (UserSchema, "username"),
}


# The names of the file's date fields: the only values "today-N" is expanded in.
DATE_FIELDS = frozenset(
    name
    for schema_cls, _ in SECTIONS.values()
    for name, declared in schema_cls._declared_fields.items()
    if isinstance(declared, fields.Date)
)


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
    users: list[UserSpec] = field(default_factory=list)
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
        ("users", "username"),
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
