"""Reference data: the file is validated whole, named errors, loaded idempotently, tokens hashed."""

from __future__ import annotations

import copy
import json
import threading
from datetime import date
from decimal import Decimal

import pytest
import redis

from tests.conftest import DONGFANG, HAIXIN, NANHAI, demo_text
from workflow import keys
from workflow.reference import (
    Bank,
    BuyerLimit,
    Policy,
    Principal,
    ReferenceData,
    ReferenceFileError,
    ReferenceRepository,
    parse_reference,
    parse_reference_json,
    store_reference,
    token_digest,
)


@pytest.fixture
def demo_doc() -> dict:
    """data/demo.json as loaded on DEMO_TODAY (amounts as Decimal, as the loader reads them)."""
    return json.loads(demo_text(), parse_float=Decimal)


def problems_of(document) -> list[str]:
    with pytest.raises(ReferenceFileError) as info:
        parse_reference(document)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def dump(client) -> dict:
    """Every key in Redis with its value, by type."""
    out = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if key == keys.reference_version():
            # A random token each write, for caches to notice it: that one was written counts.
            out[key] = "written"
        elif kind == "string":
            out[key] = client.get(key)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        elif key == keys.token_added():
            # When each token was first added is a clock reading: only which ones matters.
            out[key] = sorted(client.hkeys(key))
        elif key.startswith(keys.user("")):
            # A user's creation time and session generation are a clock and a random draw.
            out[key] = {
                k: v for k, v in client.hgetall(key).items() if k not in ("created_at", "epoch")
            }
        elif kind == "hash":
            out[key] = client.hgetall(key)
        else:  # pragma: no cover - the loader writes no other types
            out[key] = (kind, None)
    return out


# --- parsing -------------------------------------------------------------------------------------


def test_demo_file_parses(demo_reference):
    data = demo_reference
    assert isinstance(data, ReferenceData)
    counts = {name: len(getattr(data, name)) for name in (
        "policies", "limits", "declarations", "overdues", "whitelists", "banks", "exporters",
        "tokens", "users")}
    assert counts == {"policies": 3, "limits": 3, "declarations": 40, "overdues": 1,
                      "whitelists": 2, "banks": 3, "exporters": 3, "tokens": 6, "users": 9}
    policy = data.policies[0]
    assert isinstance(policy, Policy)
    assert policy.coverage_ratio == Decimal("0.90")
    assert policy.excluded_countries == ("KP", "IR")
    assert policy.start == date(2026, 1, 1)
    limit = data.limits[0]
    assert isinstance(limit, BuyerLimit)
    assert limit.amount == Decimal("500000.00")
    boc = next(b for b in data.banks if b.bank_id == "BOC-NB")
    assert isinstance(boc, Bank)
    assert boc.annual_rate == Decimal("0.0420") and boc.requires_whitelist is True
    assert ("demo-bank-boc-nb-0001", Principal("bank", "BOC-NB")) in data.tokens
    assert ("demo-exporter-haixin-0001", Principal("exporter", HAIXIN)) in data.tokens


def test_float_numbers_in_the_file_stay_exact():
    text = demo_text().replace('"0.0420"', "0.042")
    data = parse_reference_json(text)
    boc = next(b for b in data.banks if b.bank_id == "BOC-NB")
    assert boc.annual_rate == Decimal("0.042")
    assert str(boc.annual_rate) == "0.042"


def test_bad_field_names_record_and_field(demo_doc):
    demo_doc["limits"][1]["amount"] = "lots"
    assert problems_of(demo_doc) == [
        "limits[1] (limit_id=LIM-HX-US0042).amount: Not a valid number."]


def test_every_problem_is_listed(demo_doc):
    demo_doc["policies"][0]["coverage_ratio"] = "1.5"
    demo_doc["banks"][2]["currencies"] = ["XXY"]
    demo_doc["exporters"][1]["uscc"] = "91330200MA2CD3E4F0"  # wrong check character
    demo_doc["limits"][0]["country"] = "ZZ"
    problems = problems_of(demo_doc)
    assert len(problems) == 4
    assert problems[0].startswith("policies[0] (policy_no=SIN-2026-0001).coverage_ratio: ")
    assert problems[1].startswith("limits[0] (limit_id=LIM-HX-DE0001).country: not an ISO 3166")
    assert problems[2].startswith("banks[2] (bank_id=CCB-NB).currencies.0: not an ISO 4217")
    assert problems[3].startswith(
        "exporters[1] (uscc=91330200MA2CD3E4F0).uscc: not a valid unified social credit code")


@pytest.mark.parametrize(
    ("section", "index", "field", "value", "expected"),
    [
        ("policies", 0, "status", "dormant", "policies[0] (policy_no=SIN-2026-0001).status: "),
        ("policies", 0, "end", "2025-01-01", "policies[0] (policy_no=SIN-2026-0001).end: end is"),
        ("policies", 0, "max_credit_days", 361, "policies[0] (policy_no=SIN-2026-0001)."
         "max_credit_days: "),
        ("policies", 0, "declaration_window_days", "15", "policies[0] (policy_no=SIN-2026-0001)."
         "declaration_window_days: "),
        ("limits", 2, "expiry", "2026-01-01", "limits[2] (limit_id=LIM-DF-GB0007).expiry: expiry"),
        ("limits", 2, "amount", "-5.00", "limits[2] (limit_id=LIM-DF-GB0007).amount: "),
        ("limits", 2, "amount", "0", "limits[2] (limit_id=LIM-DF-GB0007).amount: "),
        ("limits", 2, "amount", "1000000000000.00", "limits[2] (limit_id=LIM-DF-GB0007).amount: "),
        ("banks", 0, "max_amount", "1000000000000.00", "banks[0] (bank_id=BOC-NB).max_amount: "),
        ("banks", 0, "min_amount", "-1.00", "banks[0] (bank_id=BOC-NB).min_amount: "),
        ("declarations", 3, "declared_on", "yesterday",
         "declarations[3] (invoice_number=INV-HX-1004).declared_on: Not a valid date"),
        ("whitelists", 0, "members", ["nope"], "whitelists[0] (programme=NB-2026-TONGBAO)."
         "members.0: not a valid unified social credit code"),
        ("banks", 0, "max_amount", "5.00", "banks[0] (bank_id=BOC-NB).max_amount: max_amount is "
         "below min_amount"),
        ("banks", 1, "bank_id", "ICBC NB", "banks[1] (bank_id=ICBC NB).bank_id: use 1-64 letters"),
        ("banks", 1, "advance_rate", "0", "banks[1] (bank_id=ICBC-NB).advance_rate: "),
        ("banks", 1, "decision_hours", "721", "banks[1] (bank_id=ICBC-NB).decision_hours: "),
        ("exporters", 0, "name", "   ", "exporters[0] (uscc=91330200MA2AB1C2DJ).name: must not"),
    ],
)
def test_invalid_values_named(demo_doc, section, index, field, value, expected):
    demo_doc[section][index][field] = value
    problems = problems_of(demo_doc)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_missing_required_field_named(demo_doc):
    del demo_doc["limits"][0]["currency"]
    assert problems_of(demo_doc) == [
        "limits[0] (limit_id=LIM-HX-DE0001).currency: Missing data for required field."]


def test_record_that_is_not_an_object(demo_doc):
    demo_doc["banks"].append(["BOC-NB"])
    problems = problems_of(demo_doc)
    assert len(problems) == 1 and problems[0].startswith("banks[3]: ")


def test_unknown_section_refused(demo_doc):
    demo_doc["buyers"] = []
    assert problems_of(demo_doc) == ["buyers: unknown section"]


def test_unknown_field_refused(demo_doc):
    demo_doc["policies"][1]["premium"] = "1000.00"
    assert problems_of(demo_doc) == [
        "policies[1] (policy_no=SIN-2026-0002).premium: Unknown field."]


def test_section_must_be_a_list(demo_doc):
    demo_doc["banks"] = {"BOC-NB": {}}
    assert problems_of(demo_doc) == ["banks: must be a list"]


@pytest.mark.parametrize("document", [[], "text", None, 3])
def test_document_must_be_an_object(document):
    assert problems_of(document) == ["the file must hold one JSON object"]


def test_not_json():
    with pytest.raises(ReferenceFileError, match="not valid JSON"):
        parse_reference_json("{policies: [")


def test_empty_document_is_valid():
    data = parse_reference({})
    assert data == ReferenceData(sections=frozenset())


def test_policy_cannot_list_both_covered_and_excluded(demo_doc):
    demo_doc["policies"][0]["covered_countries"] = ["DE"]
    assert problems_of(demo_doc) == [
        "policies[0] (policy_no=SIN-2026-0001).covered_countries: give covered_countries or "
        "excluded_countries, not both"]


@pytest.mark.parametrize(
    ("section", "id_field", "expected"),
    [
        ("policies", "policy_no", "policies[3] (policy_no=SIN-2026-0001): duplicate policy_no"),
        ("limits", "limit_id", "limits[3] (limit_id=LIM-HX-DE0001): duplicate limit_id"),
        ("banks", "bank_id", "banks[3] (bank_id=BOC-NB): duplicate bank_id"),
        ("exporters", "uscc", f"exporters[3] (uscc={HAIXIN}): duplicate uscc"),
        ("whitelists", "programme",
         "whitelists[2] (programme=NB-2026-TONGBAO): duplicate programme"),
    ],
)
def test_duplicate_ids_refused(demo_doc, section, id_field, expected):
    demo_doc[section].append(copy.deepcopy(demo_doc[section][0]))
    assert problems_of(demo_doc) == [expected]


def test_duplicate_token_refused_without_echoing_it(demo_doc):
    demo_doc["tokens"].append({"token": "demo-exporter-haixin-0001", "bank_id": "CCB-NB"})
    problems = problems_of(demo_doc)
    assert problems == ["tokens[6].token: duplicate token"]


@pytest.mark.parametrize(
    "record",
    [
        {"token": "a-long-enough-token-0001"},
        {"token": "a-long-enough-token-0001", "bank_id": "BOC-NB", "exporter_uscc": HAIXIN},
        {"token": "short", "bank_id": "BOC-NB"},
        {"token": "a-long-enough-token-0001", "bank_id": "BOC-NB", "role": "admin"},
    ],
)
def test_bad_token_records_never_echo_the_token(record):
    problems = problems_of({"tokens": [record]})
    assert problems
    for problem in problems:
        assert problem.startswith("tokens[0]")
        assert record["token"] not in problem


# --- storage -------------------------------------------------------------------------------------


def test_bad_file_loads_nothing(fake_redis, demo_doc):
    demo_doc["limits"][2]["amount"] = "-1.00"
    with pytest.raises(ReferenceFileError):
        store_reference(fake_redis, parse_reference(demo_doc))
    assert fake_redis.dbsize() == 0


def test_store_returns_counts(any_redis, demo_reference):
    counts = store_reference(any_redis, demo_reference)
    assert counts == {"policies": 3, "limits": 3, "declarations": 40, "overdues": 1,
                      "whitelists": 2, "banks": 3, "exporters": 3, "tokens": 6, "users": 9}


def test_store_is_idempotent(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    first = dump(any_redis)
    store_reference(any_redis, demo_reference)
    assert dump(any_redis) == first
    assert keys.policy("SIN-2026-0001") in first
    assert first[keys.limits_for("SIN-2026-0001", "DE-0001")] == ["LIM-HX-DE0001"]


def test_round_trip_through_redis(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    ref = ReferenceRepository(any_redis)
    for policy in demo_reference.policies:
        assert ref.policy(policy.policy_no) == policy
    for limit in demo_reference.limits:
        assert ref.limit(limit.limit_id) == limit
    assert ref.limits_for("SIN-2026-0001", "DE-0001") == [demo_reference.limits[0]]
    assert ref.limits_for("SIN-2026-0001", "XX-0000") == []
    assert sorted(demo_reference.banks, key=lambda b: b.bank_id) == ref.banks()
    for decl in demo_reference.declarations:
        assert ref.declaration(decl.policy_no, decl.buyer_code, decl.invoice_number) == decl
    assert ref.declaration("SIN-2026-0001", "DE-0001", "INV-NOPE") is None
    assert ref.overdues("SIN-2026-0001", "BR-0099") == demo_reference.overdues
    assert ref.overdues("SIN-2026-0001", "DE-0001") == []
    for exporter in demo_reference.exporters:
        assert ref.exporter(exporter.uscc) == exporter
    usccs = [e.uscc for e in demo_reference.exporters]
    assert ref.exporters([*usccs, "NOPE"]) == {
        **{e.uscc: e for e in demo_reference.exporters}, "NOPE": None
    }
    assert ref.exporters([]) == {}
    assert ref.policy("NOPE") is None and ref.bank("NOPE") is None and ref.limit("NOPE") is None


def test_whitelists_of(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    ref = ReferenceRepository(any_redis)
    [nb] = ref.whitelists_of(HAIXIN)
    assert (nb.programme, nb.valid_to, nb.members) == ("NB-2026-TONGBAO", date(2030, 12, 31), ())
    assert [w.programme for w in ref.whitelists_of(NANHAI)] == ["SZ-2025-TONGBAO"]
    assert ref.whitelists_of(DONGFANG) == []


def test_reloaded_whitelist_replaces_its_members(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    demo_doc["whitelists"][0]["members"] = [DONGFANG]
    store_reference(any_redis, parse_reference({"whitelists": demo_doc["whitelists"]}))
    assert any_redis.smembers(keys.whitelist_members("NB-2026-TONGBAO")) == {DONGFANG}
    ref = ReferenceRepository(any_redis)
    assert ref.whitelists_of(HAIXIN) == []
    assert [w.programme for w in ref.whitelists_of(DONGFANG)] == ["NB-2026-TONGBAO"]


def test_reloaded_whitelist_may_become_empty(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    demo_doc["whitelists"][0]["members"] = []
    store_reference(any_redis, parse_reference({"whitelists": demo_doc["whitelists"][:1]}))
    assert not any_redis.exists(keys.whitelist_members("NB-2026-TONGBAO"))
    assert ReferenceRepository(any_redis).whitelists_of(HAIXIN) == []


def test_reload_updates_records(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    demo_doc["limits"][0]["amount"] = "650000.00"
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"]}))
    assert ReferenceRepository(any_redis).limit("LIM-HX-DE0001").amount == Decimal("650000.00")


def test_an_exporters_policies_and_their_limits_follow_a_reload(any_redis, demo_doc):
    """The application form reads an exporter's policies and their limits through lookup
    hashes the loader rebuilds whole: a policy moved to another exporter, or a limit moved to
    another policy, is found only where the file now puts it."""
    store_reference(any_redis, parse_reference(demo_doc))
    ref = ReferenceRepository(any_redis)
    haixin = [p.policy_no for p in ref.policies_of(HAIXIN)]
    assert "SIN-2026-0001" in haixin
    assert "LIM-HX-DE0001" in [lim.limit_id for lim in ref.limits_under(haixin)]
    moved = next(p for p in demo_doc["policies"] if p["policy_no"] == "SIN-2026-0001")
    moved["exporter_uscc"] = NANHAI
    store_reference(any_redis, parse_reference({"policies": demo_doc["policies"]}))
    assert "SIN-2026-0001" not in [p.policy_no for p in ref.policies_of(HAIXIN)]
    assert "SIN-2026-0001" in [p.policy_no for p in ref.policies_of(NANHAI)]
    demo_doc["limits"] = [lim for lim in demo_doc["limits"] if lim["limit_id"] != "LIM-HX-DE0001"]
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"]}))
    assert "LIM-HX-DE0001" not in [lim.limit_id for lim in ref.limits_under(["SIN-2026-0001"])]
    assert ref.limits_under([]) == [] and ref.policies_of("91000000000000000X") == []


def test_tokens_stored_only_hashed(any_redis, demo_reference):
    store_reference(any_redis, demo_reference)
    everything = json.dumps(dump(any_redis), ensure_ascii=False)
    for token, _ in demo_reference.tokens:
        assert token not in everything
        assert any_redis.exists(keys.token(token_digest(token)))
    ref = ReferenceRepository(any_redis)
    assert ref.principal("demo-bank-icbc-nb-0002") == Principal("bank", "ICBC-NB")
    assert ref.principal("demo-exporter-dongfang-0002") == Principal("exporter", DONGFANG)
    assert ref.principal("demo-bank-icbc-nb-0003") is None


def test_token_digest_is_sha256():
    assert token_digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


# --- reloads: each section in the file replaces that section whole -----------------------------


def test_limit_moved_to_another_buyer_leaves_nothing_under_the_old_one(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    demo_doc["limits"][0]["buyer_code"] = "DE-0002"
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"]}))
    ref = ReferenceRepository(any_redis)
    assert ref.limits_for("SIN-2026-0001", "DE-0001") == []
    assert [lim.limit_id for lim in ref.limits_for("SIN-2026-0001", "DE-0002")] == [
        "LIM-HX-DE0001"]
    assert not any_redis.exists(keys.limits_for("SIN-2026-0001", "DE-0001"))


def test_limit_moved_to_another_policy_leaves_nothing_under_the_old_one(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    demo_doc["limits"][0]["policy_no"] = "SIN-2026-0002"
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"]}))
    ref = ReferenceRepository(any_redis)
    assert ref.limits_for("SIN-2026-0001", "DE-0001") == []
    assert [lim.limit_id for lim in ref.limits_for("SIN-2026-0002", "DE-0001")] == [
        "LIM-HX-DE0001"]


def test_limit_removed_from_the_file_disappears_but_its_reservations_stay(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    # A live deal's reservation on the limit: it belongs to the deal, not to the reference data.
    any_redis.hset(keys.exposure_reservations("LIM-HX-DE0001"), "deal-1", 1000)
    any_redis.set(keys.exposure_reserved_total("LIM-HX-DE0001"), 1000)
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"][1:]}))
    ref = ReferenceRepository(any_redis)
    assert ref.limit("LIM-HX-DE0001") is None
    assert ref.limits_for("SIN-2026-0001", "DE-0001") == []
    assert ref.limit(demo_doc["limits"][1]["limit_id"]) is not None
    assert any_redis.hgetall(keys.exposure_reservations("LIM-HX-DE0001")) == {"deal-1": "1000"}
    assert any_redis.get(keys.exposure_reserved_total("LIM-HX-DE0001")) == "1000"


def _without_first(demo_doc: dict, section: str) -> dict:
    return {section: demo_doc[section][1:]}


@pytest.mark.parametrize(
    ("section", "gone_key"),
    [
        ("policies", lambda d: keys.policy(d["policy_no"])),
        ("banks", lambda d: keys.bank(d["bank_id"])),
        ("exporters", lambda d: keys.exporter(d["uscc"])),
        ("declarations",
         lambda d: keys.declaration(d["policy_no"], d["buyer_code"], d["invoice_number"])),
        ("overdues", lambda d: keys.overdues(d["policy_no"], d["buyer_code"])),
        ("whitelists", lambda d: keys.whitelist(d["programme"])),
    ],
)
def test_record_removed_from_the_file_disappears(any_redis, demo_doc, section, gone_key):
    store_reference(any_redis, parse_reference(demo_doc))
    removed = demo_doc[section][0]
    assert any_redis.exists(gone_key(removed))
    store_reference(any_redis, parse_reference(_without_first(demo_doc, section)))
    assert not any_redis.exists(gone_key(removed))
    for kept in demo_doc[section][1:]:
        assert any_redis.exists(gone_key(kept))


def test_removed_bank_and_whitelist_leave_their_sets(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    store_reference(any_redis, parse_reference({"banks": demo_doc["banks"][1:],
                                                "whitelists": demo_doc["whitelists"][1:]}))
    ref = ReferenceRepository(any_redis)
    assert [b.bank_id for b in ref.banks()] == sorted(b["bank_id"] for b in demo_doc["banks"][1:])
    gone = demo_doc["whitelists"][0]["programme"]
    assert gone not in any_redis.smembers(keys.whitelists())
    assert not any_redis.exists(keys.whitelist_members(gone))
    assert ref.whitelists_of(HAIXIN) == []


def test_overdue_report_dropped_from_a_buyer_disappears(any_redis, demo_doc):
    report = demo_doc["overdues"][0]
    later = {**report, "reported_on": "2026-11-01"}
    store_reference(any_redis, parse_reference({"overdues": [report, later]}))
    store_reference(any_redis, parse_reference({"overdues": [later]}))
    ref = ReferenceRepository(any_redis)
    assert [o.reported_on for o in ref.overdues(report["policy_no"], report["buyer_code"])] == [
        date(2026, 11, 1)]


def test_an_empty_section_empties_it(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    store_reference(any_redis, parse_reference({"banks": []}))
    assert ReferenceRepository(any_redis).banks() == []
    assert not any_redis.exists(keys.bank("BOC-NB"))


def test_sections_absent_from_the_file_are_untouched(any_redis, demo_doc):
    store_reference(any_redis, parse_reference(demo_doc))
    before = dump(any_redis)
    store_reference(any_redis, parse_reference({"banks": demo_doc["banks"][:1]}))
    after = dump(any_redis)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    gone_banks = {keys.bank(b["bank_id"]) for b in demo_doc["banks"][1:]}
    assert changed == gone_banks | {keys.banks()}


def test_reload_of_the_whole_file_leaves_exactly_that_file(any_redis, demo_doc):
    first = copy.deepcopy(demo_doc)
    first["limits"][0]["buyer_code"] = "DE-0002"
    first["policies"].append({**first["policies"][0], "policy_no": "SIN-OLD"})
    first["banks"].append({**first["banks"][0], "bank_id": "OLD-BANK"})
    store_reference(any_redis, parse_reference(first))
    store_reference(any_redis, parse_reference(demo_doc))
    reloaded = dump(any_redis)
    any_redis.flushdb()
    store_reference(any_redis, parse_reference(demo_doc))
    assert reloaded == dump(any_redis)


def test_data_loaded_before_the_registries_loses_a_moved_limits_old_entry(any_redis, demo_doc):
    # What an older version left: records and lookup sets, no registries.
    store_reference(any_redis, parse_reference(demo_doc))
    for registry in (keys.policies(), keys.limits(), keys.limit_lookups(), keys.declarations(),
                     keys.overdue_keys(), keys.exporters()):
        any_redis.delete(registry)
    demo_doc["limits"][0]["buyer_code"] = "DE-0002"
    store_reference(any_redis, parse_reference({"limits": demo_doc["limits"]}))
    ref = ReferenceRepository(any_redis)
    assert ref.limits_for("SIN-2026-0001", "DE-0001") == []
    assert [lim.limit_id for lim in ref.limits_for("SIN-2026-0001", "DE-0002")] == [
        "LIM-HX-DE0001"]
    # From now on the registries know every limit the file named.
    assert any_redis.smembers(keys.limits()) == {lim["limit_id"] for lim in demo_doc["limits"]}


def test_concurrent_loads_leave_exactly_one_files_content(real_redis, demo_doc):
    other = copy.deepcopy(demo_doc)
    other["limits"][0]["buyer_code"] = "DE-0002"
    other["limits"][1]["policy_no"] = "SIN-2026-0002"
    other["policies"] = other["policies"][1:]
    # Every bank stays: the file's tokens name them, and tokens are only ever added.
    other["banks"][1]["annual_rate"] = "0.0999"
    other["declarations"] = other["declarations"][5:]
    other["whitelists"][0]["members"] = [DONGFANG]
    files = [parse_reference(demo_doc), parse_reference(other)]
    expected = []
    for data in files:
        real_redis.flushdb()
        store_reference(real_redis, data)
        expected.append(dump(real_redis))
    real_redis.flushdb()

    for _round in range(5):
        # Eight loads of the two files at once, on their own connections.
        assert not _run_together(8, lambda i: store_reference(
            redis.Redis(connection_pool=real_redis.connection_pool), files[i % 2]))
        assert dump(real_redis) in expected


def _run_together(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


# --- ids that become Redis key names ---------------------------------------------------------


def test_programme_named_like_anothers_member_set_is_refused(demo_doc):
    """"X:members" would be programme X's member set: a programme is a safe identifier."""
    extra = copy.deepcopy(demo_doc["whitelists"][0])
    extra["programme"] = demo_doc["whitelists"][0]["programme"] + ":members"
    demo_doc["whitelists"].append(extra)
    assert problems_of(demo_doc) == [
        "whitelists[2] (programme=NB-2026-TONGBAO:members).programme: use 1-64 letters, digits"
        " or _ . -"
    ]


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("policies", "policy_no", "SIN:2026"),
        ("limits", "limit_id", "LIM}:reserved"),
        ("limits", "buyer_code", "DE:0001"),
        ("declarations", "invoice_number", "INV:1"),
        ("declarations", "buyer_code", " DE-0001"),
        ("overdues", "policy_no", "x" * 65),
        ("whitelists", "programme", "NB 2026"),
    ],
)
def test_ids_in_key_names_follow_the_apis_code_pattern(demo_doc, section, field, value):
    """No ":" or braces (two ids could name one key), and no code the API could not send."""
    demo_doc[section][0][field] = value
    problems = problems_of(demo_doc)
    assert len(problems) == 1 and f".{field}: use 1-64 letters" in problems[0], problems


@pytest.mark.parametrize("value", ["Sino\u0007sure", "Sino\ud800sure", "  ", "x" * 5000])
def test_policy_insurer_is_checked_like_every_other_text_field(demo_doc, value):
    demo_doc["policies"][0]["insurer"] = value
    problems = problems_of(demo_doc)
    assert len(problems) == 1 and ".insurer: " in problems[0], problems


def test_cli_load_with_an_out_of_range_relative_date_reports_cleanly(tmp_path, monkeypatch):
    """"today-999999" (before year 1) is a listed problem of the file, exit status 1."""
    import fakeredis
    from click.testing import CliRunner

    from web import cli

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(lambda url, **kw: client))
    path = tmp_path / "far.json"
    overdue = {"policy_no": "SIN-2026-0001", "buyer_code": "DE-0001", "reported_on": "today-999999"}
    path.write_text(json.dumps({"overdues": [overdue]}))
    result = CliRunner().invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "far.json: not loaded, 1 problem(s):" in result.stderr
    assert "overdues[0] (buyer_code=DE-0001).reported_on: Not a valid date" in result.stderr
