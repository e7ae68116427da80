"""Reference data: insurer policies and buyer limits, declarations, whitelists, banks, tokens.

Operators load it from one JSON file (``xinbao load FILE.json``); the whole file is validated
first and then written in one Redis transaction, so a bad file loads nothing. Each section the
file contains replaces that section whole; a section it leaves out is untouched.

``records`` holds the records, ``schemas`` the file's schemas, ``file`` its parser, ``loading``
the transactional write and ``repository`` the reads.
"""

from __future__ import annotations

from workflow.reference.file import (
    ReferenceData,
    ReferenceFileError,
    decode_reference_text,
    parse_reference,
    parse_reference_json,
)
from workflow.reference.loading import ReferenceLoadConflict, store_reference
from workflow.reference.records import (
    Bank,
    BuyerLimit,
    Declaration,
    Exporter,
    Overdue,
    Policy,
    Whitelist,
)
from workflow.reference.repository import CoverFacts, ReferenceRepository
from workflow.tokens import Principal, token_digest

__all__ = [
    "Bank",
    "CoverFacts",
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
