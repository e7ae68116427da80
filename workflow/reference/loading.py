"""Writing a reference file: each section it contains replaces that section, in one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import WatchError

from workflow import keys
from workflow.reference.cache import mark_reference_changed
from workflow.reference.file import SECTIONS, ReferenceData, ReferenceFileError
from workflow.reference.records import as_text
from workflow.tokens import (
    BANK,
    bound_elsewhere,
    revoked_digests,
    stage_tokens,
    token_digest,
)
from workflow.user_files import cli_user_conflicts, stage_file_users, stored_sources
from workflow.users import UserSpec


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
    # Programmes `xinbao whitelist import` wrote are in the first set too, and stay.
    "whitelists": (keys.whitelists(), keys.imported_whitelists()),
    "banks": (keys.banks(),),
    "exporters": (keys.exporters(),),
    "users": (keys.file_users(),),
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
        # A token revoked, or added for someone else, while this load runs must stay so; the
        # subjects read from Redis must still be there when the tokens are written.
        watched.append(keys.tokens_revoked())
        watched += [keys.token(token_digest(token)) for token, _ in data.tokens]
        watched += [_subject_key(principal) for _, principal in data.tokens]
    if "users" in sections:
        # A user added by `xinbao user add` meanwhile must not be overwritten; operator state
        # (disabled, lockout) written meanwhile is kept, as the load never writes it.
        watched += [keys.user(u.username) for u in data.users]
        watched += [_user_subject_key(u) for u in data.users]
    with redis.pipeline(transaction=True) as pipe:
        for _ in range(_LOAD_ATTEMPTS):
            try:
                if watched:
                    pipe.watch(*watched)
                problems = bound_elsewhere(pipe, data.tokens)
                problems += _unknown_subjects(pipe, data, sections)
                problems += _imported_programmes(pipe, data, sections)
                users_before = stored_sources(pipe, data.users) if "users" in sections else {}
                problems += cli_user_conflicts(data.users, users_before)
                if problems:
                    raise ReferenceFileError(problems)
                previous = _previous(pipe, data, sections)
                revoked = revoked_digests(pipe, data.tokens)
                pipe.multi()
                _write(pipe, data, sections, previous)
                if "users" in sections:
                    stage_file_users(
                        pipe,
                        data.users,
                        previous[keys.file_users()],
                        users_before,
                        data.source,
                        datetime.now(UTC),
                    )
                stage_tokens(pipe, data.tokens, data.source, skip=revoked)
                mark_reference_changed(pipe)
                pipe.execute()
                break
            except WatchError:
                continue
        else:
            raise ReferenceLoadConflict(
                f"reference data changed under {_LOAD_ATTEMPTS} attempts; load again"
            )
    return {section: len(getattr(data, section)) for section in SECTIONS}


def _user_subject_key(user: UserSpec) -> str:
    return keys.bank(user.bank_id) if user.bank_id else keys.exporter(user.subject)


def _subject_key(principal: Any) -> str:
    if principal.role == BANK:
        return keys.bank(principal.subject)
    return keys.exporter(principal.subject)


def _unknown_subjects(pipe: Any, data: ReferenceData, sections: frozenset[str]) -> list[str]:
    """A problem for each token or user whose exporter or bank will not exist after this load,
    as `xinbao token add` and `xinbao user add` refuse one: a section the file holds is the
    whole truth, so its subjects must be in the file; otherwise they must be loaded already."""
    in_file = {
        "exporter": ({e.uscc for e in data.exporters}, "exporters"),
        "bank": ({b.bank_id for b in data.banks}, "banks"),
    }
    problems = []
    for index, (_, principal) in enumerate(data.tokens):
        named, section = in_file[principal.role]
        if section in sections:
            if principal.subject not in named:
                problems.append(
                    f"tokens[{index}]: no {principal.role} {principal.subject} in the file's"
                    f" {section}"
                )
        elif not pipe.exists(_subject_key(principal)):
            problems.append(
                f"tokens[{index}]: no {principal.role} {principal.subject} in the file or the"
                " loaded reference data"
            )
    for index, user in enumerate(data.users):
        role, field = ("bank", "bank_id") if user.bank_id else ("exporter", "exporter_uscc")
        named, section = in_file[role]
        label = f"users[{index}] (username={user.username}).{field}"
        if section in sections:
            if user.subject not in named:
                problems.append(f"{label}: no {role} {user.subject} in the file's {section}")
        elif not pipe.exists(_user_subject_key(user)):
            problems.append(
                f"{label}: no {role} {user.subject} in the file or the loaded reference data"
            )
    return problems


def _imported_programmes(pipe: Any, data: ReferenceData, sections: frozenset[str]) -> list[str]:
    """A problem for each file programme that `xinbao whitelist import` wrote: the import
    owns it, as `xinbao user add` owns its users."""
    if "whitelists" not in sections:
        return []
    imported = _members(pipe, keys.imported_whitelists())
    return [
        f"whitelists[{index}] (programme={w.programme}).programme: imported by xinbao"
        " whitelist import; a load does not replace it (rename one of them)"
        for index, w in enumerate(data.whitelists)
        if w.programme in imported
    ]


def _members(pipe: Any, key: str) -> set[str]:
    return {as_text(m) for m in pipe.smembers(key)}


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
        by_name = {p.policy_no: p for p in data.policies}
        _replace_records(pipe, before, keys.policies(), keys.policy, by_name)
        by_exporter: dict[str, list[str]] = {}
        for policy in sorted(data.policies, key=lambda p: p.policy_no):
            by_exporter.setdefault(policy.exporter_uscc, []).append(policy.policy_no)
        _replace_hash(pipe, keys.policies_by_exporter(), by_exporter)
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
        by_policy: dict[str, list[str]] = {}
        for lim in sorted(data.limits, key=lambda lim: lim.limit_id):
            by_policy.setdefault(lim.policy_no, []).append(lim.limit_id)
        _replace_hash(pipe, keys.limits_by_policy(), by_policy)
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
        imported = before[keys.imported_whitelists()]
        for gone in sorted(before[keys.whitelists()] - programmes - imported):
            pipe.delete(keys.whitelist(gone), keys.whitelist_members(gone))
        for w in data.whitelists:
            meta = {k: v for k, v in asdict(w).items() if k != "members"}
            pipe.set(keys.whitelist(w.programme), json.dumps(meta, default=str))
            # A programme's list is replaced whole: a firm dropped from the list is no longer on it.
            pipe.delete(keys.whitelist_members(w.programme))
            if w.members:
                pipe.sadd(keys.whitelist_members(w.programme), *w.members)
        _replace_registry(pipe, keys.whitelists(), programmes | imported)
    if "banks" in sections:
        by_name = {b.bank_id: b for b in data.banks}
        _replace_records(pipe, before, keys.banks(), keys.bank, by_name)
    if "exporters" in sections:
        by_name = {e.uscc: e for e in data.exporters}
        _replace_records(pipe, before, keys.exporters(), keys.exporter, by_name)


def _replace_hash(pipe: Any, key: str, lists: dict[str, list[str]]) -> None:
    """Queue the replacement of a lookup hash whole: name -> JSON list."""
    pipe.delete(key)
    if lists:
        pipe.hset(key, mapping={name: json.dumps(items) for name, items in lists.items()})


def _replace_records(
    pipe: Any,
    before: dict[str, set[str]],
    registry: str,
    key_of: Callable[[str], str],
    records: dict[str, Any],
) -> None:
    """Queue the replacement of a section of one key per record: what the file no longer
    names is deleted, every record written, the registry set to exactly the file's names."""
    for gone in sorted(before[registry] - records.keys()):
        pipe.delete(key_of(gone))
    for name, record in records.items():
        pipe.set(key_of(name), _encode(record))
    _replace_registry(pipe, registry, set(records))
