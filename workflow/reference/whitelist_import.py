"""Importing a whitelist programme's members: the new set replaces the old whole, atomically."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from redis.exceptions import RedisError, WatchError

from workflow import keys
from workflow.identifiers import IDENTIFIER_HELP, IDENTIFIER_RE, text_problem
from workflow.reference.cache import mark_reference_changed
from workflow.reference.records import as_text

# Members go to Redis in batches of this many (one SADD each, pipelined).
STAGE_BATCH = 10_000
# A staged set outlives a dead import by this long, then Redis drops it.
STAGING_TTL_SECONDS = 3600
_SWAP_ATTEMPTS = 20
SOURCE = "import"


class WhitelistImportError(RuntimeError):
    """The import cannot replace this programme (nothing of it was written)."""


@dataclass(frozen=True)
class ProgrammeSpec:
    programme: str
    region: str
    valid_from: date
    valid_to: date


@dataclass(frozen=True)
class Change:
    """The new member set against the programme's stored one."""

    added: list[str]
    removed: list[str]
    unchanged: int
    previous_version: int | None
    previous_source: str | None


@dataclass(frozen=True)
class Imported:
    change: Change
    version: int
    members: int


def spec_problems(spec: ProgrammeSpec) -> list[str]:
    problems = []
    if not IDENTIFIER_RE.fullmatch(spec.programme):
        problems.append(f"--programme: {IDENTIFIER_HELP}")
    region_problem = text_problem(spec.region)
    if region_problem or not spec.region.strip():
        problems.append(f"--region: {region_problem or 'must not be blank'}")
    if spec.valid_to < spec.valid_from:
        problems.append("--valid-to is before --valid-from")
    return problems


def _meta(pipe: Any, programme: str) -> dict | None:
    raw = pipe.get(keys.whitelist(programme))
    return None if raw is None else json.loads(raw)


def _owner_problem(pipe: Any, programme: str) -> str | None:
    """An import may create a programme or replace one it imported before; a programme the
    reference file loaded belongs to that file (its next load would write it back)."""
    registered = pipe.sismember(keys.whitelists(), programme)
    imported = pipe.sismember(keys.imported_whitelists(), programme)
    if registered and not imported:
        return (
            f"programme {programme} was loaded from a reference file (xinbao load), which"
            " would write it back on its next load; import under another programme name, or"
            " drop it from the file's whitelists and load the file first"
        )
    return None


def _change(pipe: Any, programme: str, members: list[str]) -> Change:
    old = {as_text(m) for m in pipe.smembers(keys.whitelist_members(programme))}
    new = set(members)
    meta = _meta(pipe, programme) or {}
    return Change(
        added=sorted(new - old),
        removed=sorted(old - new),
        unchanged=len(new & old),
        previous_version=meta.get("version") if meta else None,
        previous_source=(meta.get("source") or "file") if meta else None,
    )


def preview_import(redis: Any, spec: ProgrammeSpec, members: list[str]) -> Change:
    """What importing ``members`` would change (a dry run: nothing is written)."""
    problem = _owner_problem(redis, spec.programme)
    if problem:
        raise WhitelistImportError(problem)
    return _change(redis, spec.programme, members)


def import_whitelist(
    redis: Any,
    spec: ProgrammeSpec,
    members: list[str],
    *,
    now: datetime,
    file_name: str = "",
    file_sha256: str = "",
    rejected: int = 0,
) -> Imported:
    """Replace programme ``spec.programme``'s member set whole by ``members`` (non-empty).

    The set is written under a staging key first (batched, so 100,000 members take well
    under a second), then RENAMEd over the old one in the MULTI/EXEC that writes the
    programme's record and registries: readers see the old list or the new one, never a mix,
    and a failure before EXEC leaves the old version. WATCH makes a concurrent import or load
    of the same programme send this one round again, so the change reported is exact.
    """
    if not members:
        raise WhitelistImportError("no valid members: a programme is never emptied by import")
    staging = keys.whitelist_staging(uuid.uuid4().hex)
    watched = [
        keys.whitelist(spec.programme),
        keys.whitelist_members(spec.programme),
        keys.whitelists(),
        keys.imported_whitelists(),
    ]
    try:
        _stage(redis, staging, members)
        with redis.pipeline(transaction=True) as pipe:
            for _ in range(_SWAP_ATTEMPTS):
                try:
                    pipe.watch(*watched)
                    problem = _owner_problem(pipe, spec.programme)
                    if problem:
                        raise WhitelistImportError(problem)
                    change = _change(pipe, spec.programme, members)
                    version = (change.previous_version or 0) + 1
                    meta = {
                        "programme": spec.programme,
                        "region": spec.region,
                        "valid_from": spec.valid_from.isoformat(),
                        "valid_to": spec.valid_to.isoformat(),
                        "source": SOURCE,
                        "version": version,
                        "imported_at": now.isoformat(timespec="seconds"),
                        "member_count": len(set(members)),
                        "rejected_rows": rejected,
                        "file": file_name,
                        "file_sha256": file_sha256,
                    }
                    pipe.multi()
                    pipe.rename(staging, keys.whitelist_members(spec.programme))
                    # RENAME carries the staging key's expiry over; the list itself never expires.
                    pipe.persist(keys.whitelist_members(spec.programme))
                    pipe.set(keys.whitelist(spec.programme), json.dumps(meta, sort_keys=True))
                    pipe.sadd(keys.whitelists(), spec.programme)
                    pipe.sadd(keys.imported_whitelists(), spec.programme)
                    mark_reference_changed(pipe)
                    pipe.execute()
                    return Imported(change, version, meta["member_count"])
                except WatchError:
                    continue
        raise WhitelistImportError(
            f"programme {spec.programme} changed under {_SWAP_ATTEMPTS} attempts; import again"
        )
    finally:
        # Gone after a successful RENAME; after a failure it would only wait for its expiry.
        with contextlib.suppress(RedisError):
            redis.delete(staging)


def _stage(redis: Any, staging: str, members: list[str]) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.delete(staging)
    for start in range(0, len(members), STAGE_BATCH):
        pipe.sadd(staging, *members[start : start + STAGE_BATCH])
    pipe.expire(staging, STAGING_TTL_SECONDS)
    pipe.execute()


@dataclass(frozen=True)
class ProgrammeRow:
    """One stored programme, for `xinbao whitelist list`."""

    programme: str
    region: str
    valid_from: str
    valid_to: str
    members: int
    source: str
    version: int | None
    imported_at: str | None


def list_programmes(redis: Any) -> list[ProgrammeRow]:
    """Every stored programme with its member count, loaded or imported."""
    names = sorted(as_text(p) for p in redis.smembers(keys.whitelists()))
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.whitelist(name))
        pipe.scard(keys.whitelist_members(name))
    answers = pipe.execute()
    rows = []
    for name, raw, count in zip(names, answers[::2], answers[1::2], strict=True):
        meta = json.loads(raw) if raw else {}
        rows.append(
            ProgrammeRow(
                programme=name,
                region=meta.get("region", ""),
                valid_from=str(meta.get("valid_from", "")),
                valid_to=str(meta.get("valid_to", "")),
                members=int(count),
                source=meta.get("source") or "file",
                version=meta.get("version"),
                imported_at=meta.get("imported_at"),
            )
        )
    return rows
