"""Review 12: ``ReferenceCache.at`` moved to a new reference version in two steps (the version,
then a new dict of entries). A step of another thread that asks for the new version between
the two got a view of the OLD version's entries: data cached before a reload, used by a step
that read the reload's version (reachable wherever threads share a Workflow: gthread web
workers, a threads pool). The version and its entries now change as one value."""

from __future__ import annotations

from workflow.reference import ReferenceRepository
from workflow.reference.cache import ReferenceCache


class Interleaved(ReferenceCache):
    """Runs ``other`` (another thread's step) right after the first attribute ``at`` sets."""

    other = None

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        other, type(self).other = type(self).other, None
        if other is not None:
            other()


def test_a_step_of_the_new_version_never_gets_the_old_versions_entries(fake_redis):
    cache = Interleaved(ReferenceRepository(fake_redis))
    old = cache.at("v1")
    old._entries["banks"] = ["cached before the reload"]
    seen = []
    Interleaved.other = lambda: seen.append(cache.at("v2"))
    mine = cache.at("v2")  # the reload's version, read by this step ...
    assert seen, "the other step did not run"
    # ... and by the other step, whichever assignment it ran after: neither sees v1's data.
    for view in (mine, *seen):
        assert "banks" not in view._entries
    assert cache.at("v2")._entries is mine._entries
