"""Review 2 (adversarial): reference reloads and the loader's text and date handling.

Each test here fails on the code under review and names a defect; see the docstrings.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal

import pytest

from tests.conftest import HAIXIN, demo_text, make_application
from workflow.demo import expand_relative_dates_json
from workflow.pipeline import Decision
from workflow.reference import (
    ReferenceFileError,
    ReferenceRepository,
    parse_reference,
    parse_reference_json,
    store_reference,
)
from workflow.states import State

DE_LIMIT = "LIM-HX-DE0001"


@pytest.fixture
def demo_doc() -> dict:
    return json.loads(demo_text(), parse_float=Decimal)


# --- key names built from free text collide -----------------------------------------------------


def test_whitelist_programme_named_like_anothers_member_set_does_not_break_verification(
    any_redis, demo_doc
):
    """HIGH. A programme is any 1-128 char text, and keys.whitelist("X:members") is the very key
    keys.whitelist_members("X"). A file naming programmes "NB-2026-TONGBAO" and
    "NB-2026-TONGBAO:members" loads fine ("loaded 3 whitelists"), but the second's JSON
    record overwrites the first's member SET with a string: every later whitelists_of() (every
    verification of every exporter) raises WRONGTYPE. Either refuse such names in the file or
    build keys that cannot collide."""
    extra = copy.deepcopy(demo_doc["whitelists"][0])
    extra["programme"] = demo_doc["whitelists"][0]["programme"] + ":members"
    demo_doc["whitelists"].append(extra)
    try:
        data = parse_reference(demo_doc)
    except ReferenceFileError:
        return  # refusing the name is a fine answer
    store_reference(any_redis, data)
    found = ReferenceRepository(any_redis).whitelists_of(HAIXIN)  # WRONGTYPE today
    assert {w.programme for w in found} == {
        demo_doc["whitelists"][0]["programme"],
        extra["programme"],
    }


# --- a limit replaced or withdrawn while deals hold reservations on it -------------------------


def _reload_limits(client, demo_doc, limits):
    store_reference(client, parse_reference({"limits": limits}))


def test_limit_reissued_under_a_new_id_is_not_overcommitted_for_the_same_buyer(
    any_redis, make_workflow, demo_doc
):
    """MEDIUM. Reservations are counted per limit_id. When the insurer's file replaces the
    buyer's limit by one with a new id (same policy, buyer, currency, amount), live deals keep
    their reservations on the old id and the new limit starts from zero: the same buyer can
    now carry twice its limit. DESIGN: "A buyer limit is never over-committed: the sum of live
    reservations/uses <= the limit". Here: limit 150,000; deal 1 holds 100,000; after the
    reload deal 2 (another 100,000) is also reserved, 200,000 live on a 150,000 limit."""
    wf = make_workflow(any_redis)
    demo_doc["limits"][0]["amount"] = "150000.00"
    _reload_limits(any_redis, demo_doc, demo_doc["limits"])
    first = wf.verify(wf.submit(make_application(number="INV-HX-1001")).deal.id)
    assert first.state == State.PENDING_BANK
    assert first.fields["limit_id"] == DE_LIMIT

    reissued = copy.deepcopy(demo_doc["limits"])
    reissued[0]["limit_id"] = "LIM-HX-DE0001-R1"
    _reload_limits(any_redis, demo_doc, reissued)

    second = wf.verify(wf.submit(make_application(number="INV-HX-1002")).deal.id)
    live = [d for d in (wf.store.get(first.id), second) if d.state not in (
        State.REJECTED, State.WITHDRAWN, State.UNPLACED, State.CANCELLED)]
    reserved = sum(Decimal(d.fields["reserved_amount"]) for d in live)
    assert reserved <= Decimal("150000.00"), (
        f"buyer DE-0001 carries {reserved} on a 150000.00 limit "
        f"({[(d.id, d.fields['limit_id'], d.state) for d in live]})"
    )


def test_deal_whose_limit_was_withdrawn_is_not_approved_as_if_covered(
    any_redis, make_workflow, demo_doc
):
    """MEDIUM (design gap). A reload that removes the buyer's limit (the insurer withdrew it)
    or sets it "cancelled" leaves a deal pending at a bank untouched: the bank can approve it
    and nothing records that the cover it was verified against is gone. DESIGN: before a bank
    advances money it must know a buyer limit exists and is in force. Expected: the approval
    is refused (or the deal re-verified / flagged) once the limit has gone."""
    wf = make_workflow(any_redis)
    deal = wf.verify(wf.submit(make_application()).deal.id)
    assert deal.state == State.PENDING_BANK
    _reload_limits(any_redis, demo_doc, demo_doc["limits"][1:])
    assert ReferenceRepository(any_redis).limit(DE_LIMIT) is None
    try:
        decided = wf.decide(deal.id, deal.bank_id, Decision(True, "officer-1"))
    except Exception:  # noqa: BLE001 - any refusal is a fine answer
        return
    assert decided.state != State.APPROVED, "approved against a limit the insurer withdrew"


# --- text fields of the reference file -----------------------------------------------------------


@pytest.mark.parametrize("value", ["Sino\u0007sure", "Sino\ud800sure", "  ", "x" * 5000])
def test_policy_insurer_is_validated_like_every_other_text_field(demo_doc, value):
    """LOW. PolicySchema.insurer is a bare fields.String: control characters, lone surrogates,
    blank or 5,000-char values are accepted and stored (json.dumps escapes the surrogate, and
    reading it back yields it again). Every other text field of the file uses validate_text."""
    demo_doc["policies"][0]["insurer"] = value
    with pytest.raises(ReferenceFileError) as info:
        parse_reference(demo_doc)
    assert any(".insurer" in p for p in info.value.problems), info.value.problems


# --- relative dates ("today-N") -----------------------------------------------------------------


def test_relative_date_before_year_1_is_a_reported_problem_not_an_overflow(demo_doc):
    """MEDIUM (xinbao load traceback). "today-999999" matches RELATIVE_DATE (6 digits) and
    today - 999999 days is before 0001-01-01: resolve_relative_date raises OverflowError,
    which read_reference_file does not catch, so `xinbao load` dies with a traceback instead of
    the clean "not loaded" report (exit 1). Same for a large "+N" from a late date."""
    demo_doc["limits"][0]["effective"] = "today-999999"
    text = json.dumps(demo_doc, default=str)
    with pytest.raises(ReferenceFileError):
        parse_reference_json(expand_relative_dates_json(text, date(2026, 11, 24)))


def test_cli_load_with_a_far_past_relative_date_reports_cleanly(tmp_path, monkeypatch):
    """The same through `xinbao load`: the clean report, not an OverflowError."""
    import fakeredis
    from click.testing import CliRunner

    from web import cli

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(lambda url, **kw: client))
    path = tmp_path / "far.json"
    path.write_text(json.dumps({"overdues": [
        {"policy_no": "SIN-2026-0001", "buyer_code": "DE-0001", "reported_on": "today-999999"}
    ]}))
    result = CliRunner().invoke(cli.main, ["load", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "far.json: not loaded," in result.stderr


def test_a_name_that_reads_today_is_not_turned_into_a_date(demo_doc):
    """LOW. expand_relative_dates_json rewrites every JSON string equal to "today"/"today+N",
    whatever the field: a buyer (or a policy number, limit id, region...) named "today" is
    silently stored as "2026-11-24". The insurer name then never matches what exporters type,
    so each of its deals carries a BUYER_NAME_MISMATCH warning. Only date fields should be
    expanded."""
    demo_doc["limits"][0]["buyer_name"] = "today"
    demo_doc["exporters"][0]["region"] = "today+1"
    text = json.dumps(demo_doc, default=str)
    data = parse_reference_json(expand_relative_dates_json(text, date(2026, 11, 24)))
    assert data.limits[0].buyer_name == "today"
    assert data.exporters[0].region == "today+1"
