"""Importing a programme: replaced whole or not at all, the diff, loads, and verification."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from tests.conftest import DEMO_TODAY, DONGFANG, HAIXIN, NANHAI, dongfang_application
from tests.stress.bench_whitelist import uscc_for, write_members_csv
from workflow import keys
from workflow.checks import check_results
from workflow.reference import (
    ReferenceFileError,
    ReferenceRepository,
    parse_reference,
    store_reference,
)
from workflow.reference.whitelist_file import MemberFile
from workflow.reference.whitelist_import import (
    ProgrammeSpec,
    WhitelistImportError,
    import_whitelist,
    list_programmes,
    preview_import,
    spec_problems,
)
from workflow.states import State

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SPEC = ProgrammeSpec("NB-2027-IMPORT", "Ningbo", date(2026, 1, 1), date(2027, 12, 31))


def run_import(redis, members, spec=SPEC, **kwargs):
    return import_whitelist(redis, spec, members, now=NOW, **kwargs)


def members_of(redis, programme=SPEC.programme):
    return sorted(redis.smembers(keys.whitelist_members(programme)))


def staging_keys(redis):
    return list(redis.scan_iter(match=keys.whitelist_staging("*")))


def test_first_import_creates_the_programme(any_redis):
    done = run_import(any_redis, [HAIXIN, DONGFANG], file_name="nb.csv", rejected=2)
    assert done.version == 1 and done.members == 2
    assert done.change.added == sorted([HAIXIN, DONGFANG])
    assert (done.change.removed, done.change.unchanged) == ([], 0)
    assert done.change.previous_version is None
    assert members_of(any_redis) == sorted([HAIXIN, DONGFANG])
    assert SPEC.programme in any_redis.smembers(keys.whitelists())
    assert SPEC.programme in any_redis.smembers(keys.imported_whitelists())
    meta = json.loads(any_redis.get(keys.whitelist(SPEC.programme)))
    assert meta["source"] == "import" and meta["version"] == 1
    assert meta["member_count"] == 2 and meta["rejected_rows"] == 2 and meta["file"] == "nb.csv"
    assert meta["imported_at"] == "2026-11-24T09:00:00+00:00"
    # The list never expires (RENAME would have carried the staging key's TTL over).
    assert any_redis.ttl(keys.whitelist_members(SPEC.programme)) == -1
    assert staging_keys(any_redis) == []


def test_second_import_replaces_the_list_whole_and_reports_the_change(any_redis):
    run_import(any_redis, [HAIXIN, DONGFANG])
    spec = ProgrammeSpec(SPEC.programme, "Ningbo East", date(2026, 2, 1), date(2026, 12, 31))
    done = run_import(any_redis, [DONGFANG, NANHAI], spec=spec)
    assert (done.change.added, done.change.removed, done.change.unchanged) == (
        [NANHAI], [HAIXIN], 1,
    )
    assert (done.version, done.change.previous_version, done.change.previous_source) == (
        2, 1, "import",
    )
    assert members_of(any_redis) == sorted([DONGFANG, NANHAI])  # Haixin is gone
    (found,) = ReferenceRepository(any_redis).whitelists_of(NANHAI)
    assert (found.region, found.valid_from, found.valid_to) == (
        "Ningbo East", date(2026, 2, 1), date(2026, 12, 31),
    )
    assert ReferenceRepository(any_redis).whitelists_of(HAIXIN) == []


def test_preview_writes_nothing(any_redis):
    run_import(any_redis, [HAIXIN])
    before = {k: any_redis.type(k) for k in any_redis.keys("*")}
    meta = any_redis.get(keys.whitelist(SPEC.programme))
    change = preview_import(any_redis, SPEC, [DONGFANG])
    assert (change.added, change.removed, change.unchanged) == ([DONGFANG], [HAIXIN], 0)
    assert {k: any_redis.type(k) for k in any_redis.keys("*")} == before
    assert any_redis.get(keys.whitelist(SPEC.programme)) == meta
    assert members_of(any_redis) == [HAIXIN]


def test_a_failure_before_the_swap_leaves_the_old_version(any_redis, monkeypatch):
    from workflow.reference import whitelist_import

    run_import(any_redis, [HAIXIN, DONGFANG])
    meta = any_redis.get(keys.whitelist(SPEC.programme))

    def dies(*_args):
        raise ConnectionError("connection lost")

    # The new set is staged in full; the connection dies before the MULTI/EXEC that swaps it.
    monkeypatch.setattr(whitelist_import, "_change", dies)
    with pytest.raises(ConnectionError):
        run_import(any_redis, [NANHAI])
    assert members_of(any_redis) == sorted([HAIXIN, DONGFANG])
    assert any_redis.get(keys.whitelist(SPEC.programme)) == meta
    assert staging_keys(any_redis) == []


def test_a_staging_set_left_by_a_dead_import_expires(any_redis, monkeypatch):
    from workflow.reference import whitelist_import

    monkeypatch.setattr(whitelist_import, "_change", lambda *_: (_ for _ in ()).throw(KeyError))
    monkeypatch.setattr(any_redis, "delete", lambda *_: 0)  # the clean-up never runs
    with pytest.raises(KeyError):
        run_import(any_redis, [HAIXIN])
    (left,) = staging_keys(any_redis)
    assert 0 < any_redis.ttl(left) <= whitelist_import.STAGING_TTL_SECONDS
    assert not any_redis.exists(keys.whitelist_members(SPEC.programme))


def test_a_concurrent_import_sends_this_one_round_again(any_redis, monkeypatch):
    from workflow.reference import whitelist_import

    run_import(any_redis, [HAIXIN])
    original = whitelist_import._change
    raced = []

    def change_then_race(pipe, programme, members):
        change = original(pipe, programme, members)
        if not raced:  # another import lands between this one's reads and its EXEC
            raced.append(None)
            raced[0] = run_import(any_redis, [DONGFANG])
        return change

    monkeypatch.setattr(whitelist_import, "_change", change_then_race)
    done = run_import(any_redis, [DONGFANG, NANHAI])
    assert raced[0].version == 2
    # Reported against the version it really replaced (the racer's), not the one first read.
    assert (done.version, done.change.added, done.change.removed) == (3, [NANHAI], [])
    assert members_of(any_redis) == sorted([DONGFANG, NANHAI])
    assert staging_keys(any_redis) == []


def test_an_empty_member_set_is_refused(any_redis):
    with pytest.raises(WhitelistImportError, match="no valid members"):
        run_import(any_redis, [])
    assert any_redis.keys("*") == []


def test_spec_problems():
    assert spec_problems(SPEC) == []
    bad = ProgrammeSpec("NB:2026", " ", date(2026, 2, 1), date(2026, 1, 1))
    assert spec_problems(bad) == [
        "--programme: use 1-64 letters, digits or _ . -",
        "--region: must not be blank",
        "--valid-to is before --valid-from",
    ]


# --- imported programmes and reference loads ------------------------------------------------


def test_a_load_with_whitelists_leaves_imported_programmes(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    run_import(any_redis, [DONGFANG])
    store_reference(any_redis, demo_reference)  # the demo file holds a whitelists section
    assert members_of(any_redis) == [DONGFANG]
    assert [w.programme for w in ReferenceRepository(any_redis).whitelists_of(DONGFANG)] == [
        SPEC.programme
    ]
    # A file whose whitelists section is empty removes its own programmes, not imported ones.
    store_reference(any_redis, parse_reference({"whitelists": []}))
    assert any_redis.smembers(keys.whitelists()) == {SPEC.programme}
    assert not any_redis.exists(keys.whitelist_members("NB-2026-TONGBAO"))
    assert members_of(any_redis) == [DONGFANG]


def test_a_load_naming_an_imported_programme_is_refused(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    run_import(any_redis, [DONGFANG])
    document = {
        "whitelists": [
            {"programme": SPEC.programme, "region": "Ningbo", "valid_from": "2026-01-01",
             "valid_to": "2026-12-31", "members": [HAIXIN]}
        ]
    }
    with pytest.raises(ReferenceFileError) as caught:
        store_reference(any_redis, parse_reference(document))
    assert caught.value.problems == [
        f"whitelists[0] (programme={SPEC.programme}).programme: imported by xinbao whitelist"
        " import; a load does not replace it (rename one of them)"
    ]
    assert members_of(any_redis) == [DONGFANG]


def test_an_import_does_not_take_over_a_loaded_programme(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    spec = ProgrammeSpec("NB-2026-TONGBAO", "Ningbo", date(2026, 1, 1), date(2026, 12, 31))
    for attempt in (preview_import, lambda r, s, m: import_whitelist(r, s, m, now=NOW)):
        with pytest.raises(WhitelistImportError, match="loaded from a reference file"):
            attempt(any_redis, spec, [DONGFANG])
    assert members_of(any_redis, "NB-2026-TONGBAO") == [HAIXIN]
    assert staging_keys(any_redis) == []


def test_list_programmes(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    run_import(any_redis, [DONGFANG, NANHAI])
    rows = {r.programme: r for r in list_programmes(any_redis)}
    assert rows[SPEC.programme].members == 2
    assert (rows[SPEC.programme].source, rows[SPEC.programme].version) == ("import", 1)
    assert rows["NB-2026-TONGBAO"].source == "file"
    assert rows["NB-2026-TONGBAO"].version is None


# --- verification sees imported programmes ---------------------------------------------------


def test_verification_sees_an_exporter_added_then_removed_by_import(any_redis, make_workflow):
    wf = make_workflow(any_redis)
    assert SPEC.valid_from <= DEMO_TODAY <= SPEC.valid_to
    run_import(any_redis, [DONGFANG, uscc_for(1)])
    deal = wf.verify(wf.submit(dongfang_application()).deal.id)
    assert check_results(deal)["exporter_whitelisted"] == "ok"
    assert deal.get("whitelist") == {
        "whitelisted": True, "reason": None, "programmes": [SPEC.programme],
    }
    assert deal.state == State.PENDING_BANK and deal.bank_id == "BOC-NB"  # requires a whitelist

    run_import(any_redis, [uscc_for(1), uscc_for(2)])
    later = wf.verify(wf.submit(dongfang_application(number="INV-DF-3002")).deal.id)
    assert check_results(later)["exporter_whitelisted"] == "EXPORTER_NOT_WHITELISTED"
    assert later.bank_id == "ICBC-NB"


def test_verification_reads_one_sismember_per_programme(any_redis, make_workflow, monkeypatch):
    make_workflow(any_redis)
    run_import(any_redis, [uscc_for(n) for n in range(5000)])
    calls = []
    original = type(any_redis).pipeline

    def pipeline(self, *args, **kwargs):
        pipe = original(self, *args, **kwargs)
        real = pipe.sismember

        def sismember(key, member):
            calls.append(key)
            return real(key, member)

        pipe.sismember = sismember
        return pipe

    monkeypatch.setattr(type(any_redis), "pipeline", pipeline)
    found = ReferenceRepository(any_redis).whitelists_of(uscc_for(4999))
    assert [w.programme for w in found] == [SPEC.programme]
    programmes = any_redis.smembers(keys.whitelists())
    assert sorted(calls) == sorted(keys.whitelist_members(p) for p in programmes)


# --- size -------------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_100000_member_file_imports(real_redis, tmp_path):
    path = tmp_path / "members.csv"
    write_members_csv(path, 100_000)
    members = MemberFile(path).read()
    assert (len(members.members), members.rejected) == (100_000, [])
    done = run_import(real_redis, members.members)
    assert done.members == 100_000 == real_redis.scard(keys.whitelist_members(SPEC.programme))
    assert real_redis.sismember(keys.whitelist_members(SPEC.programme), uscc_for(99_999))
    # The next version: 1% out, 1% in.
    newcomers = [uscc_for(n) for n in range(100_000, 101_000)]
    done = run_import(real_redis, members.members[1000:] + newcomers)
    assert (len(done.change.added), len(done.change.removed), done.change.unchanged) == (
        1000, 1000, 99_000,
    )
    assert not real_redis.sismember(keys.whitelist_members(SPEC.programme), uscc_for(0))
