"""Reference data cached in-process, valid for one reference version read with the work.

Every write of reference data (``xinbao load``, ``xinbao whitelist import``) sets
``keys.reference_version()`` to a fresh random token in its own transaction. A step that wants
cached reference data reads that token in the round trip it makes anyway (the deal's own read)
and asks :meth:`ReferenceCache.at` for a view: a token it has not seen drops everything cached,
so a reload is seen by the very next step that starts after it commits. Without a token (data
written by hand, a flushed database) nothing is cached: every read goes to Redis as before.

Cached: policies, buyer limits' records and lookups, overdue reports, whitelist programmes and
membership, banks. Not cached: shipment declarations (one per invoice: never read twice) and
anything that changes with deals (reservations live in the exposure keys, never here).
"""

from __future__ import annotations

import uuid
from typing import Any

from workflow import keys
from workflow.reference.records import Bank, Whitelist
from workflow.reference.repository import CoverFacts, ReferenceRepository

# Past this many cached entries the cache starts again (a bound on memory, not a policy).
MAX_ENTRIES = 20_000


def mark_reference_changed(pipe: Any) -> None:
    """Queue the new reference version with a write of reference data (in its transaction)."""
    pipe.set(keys.reference_version(), uuid.uuid4().hex)


class ReferenceView:
    """Reference reads for one step: from the cache of its version, else from Redis."""

    def __init__(self, repository: ReferenceRepository, entries: dict[Any, Any] | None):
        self.repository = repository
        self._entries = entries  # None: nothing is cached (no version known)
        # Declarations read ahead for a batch of deals (never cached past this view).
        self._declarations: dict[tuple[str, str, str], Any] = {}

    def read_declarations(self, asked: list[tuple[str, str, list[str]]]) -> None:
        """Read the declarations of a batch of deals in one round trip, for this view's
        ``cover_facts`` of each."""
        self._declarations.update(self.repository.declarations_many(asked))

    def _declarations_of(self, policy_no: str, buyer_code: str, invoices: list[str]) -> dict:
        try:
            return {n: self._declarations[(policy_no, buyer_code, n)] for n in invoices}
        except KeyError:
            return self.repository.declarations(policy_no, buyer_code, invoices)

    def _cached(self, key: Any, read: Any) -> Any:
        if self._entries is None:
            return read()
        try:
            return self._entries[key]
        except KeyError:
            pass
        value = read()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = value
        return value

    def banks(self) -> list[Bank]:
        return list(self._cached("banks", self.repository.banks))

    def whitelists_of(self, uscc: str) -> list[Whitelist]:
        return list(self._cached(("whitelists", uscc), lambda: self.repository.whitelists_of(uscc)))

    def cover_facts(self, policy_no: str, buyer_code: str, invoices: list[str]) -> CoverFacts:
        """As ``ReferenceRepository.cover_facts``; only the declarations are read each time
        (with the policy, limits and overdues in the same round trip when not cached)."""
        if self._entries is None:
            return self.repository.cover_facts(policy_no, buyer_code, invoices)
        key = ("cover", policy_no, buyer_code)
        cover = self._entries.get(key)
        if cover is None:
            facts = self.repository.cover_facts(policy_no, buyer_code, invoices)
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (facts.policy, tuple(facts.limits), tuple(facts.overdues))
            return facts
        policy, limits, overdues = cover
        return CoverFacts(
            policy=policy,
            limits=list(limits),
            declarations=self._declarations_of(policy_no, buyer_code, invoices),
            overdues=list(overdues),
        )


class ReferenceCache:
    """One process's cache of reference data, keyed by the reference version it was read at."""

    def __init__(self, repository: ReferenceRepository):
        self.repository = repository
        # The version and its entries as ONE value: threads sharing the cache (gthread web
        # workers, a threads pool) never see a version paired with another version's entries.
        self._current: tuple[str | None, dict[Any, Any]] = (None, {})

    def at(self, version: str | None) -> ReferenceView:
        """A view valid for ``version`` (read from ``keys.reference_version()`` with the step's
        own round trip); None caches nothing."""
        if version is None:
            self._current = (None, {})
            return ReferenceView(self.repository, None)
        current, entries = self._current
        if version != current:
            # A new dict, not clear(): a view still held by a running step keeps its own.
            entries = {}
            self._current = (version, entries)
        return ReferenceView(self.repository, entries)
