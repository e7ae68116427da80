"""Trade documents (四流合一): B/L and customs declaration locks, banks that require them, and
the customs export record checks at verification."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from tests.conftest import (
    DEMO_TODAY,
    DONGFANG,
    HAIXIN,
    dongfang_application,
    make_application,
)
from tests.workflow.test_concurrency import run_together
from workflow import keys
from workflow.checks import check_results
from workflow.pipeline import Decision, Disbursement, DuplicateReceivable, Repayment
from workflow.reference.customs import store_customs
from workflow.reference.records import CustomsRecord
from workflow.routing import RoutingInput, next_offer
from workflow.settings import SettingsError, load_settings
from workflow.states import State

BL = "MAEU-240312/01"
DECL = "220120260000012345"
DECL_2 = "220120260000067890"


@pytest.fixture
def wf(any_redis, make_workflow):
    return make_workflow(any_redis)


def with_docs(bl: str | None = BL, decl: str | None = DECL, **kw):
    """The demo application (Haixin -> DE-0001, USD 100,000) naming its trade documents."""
    return make_application(bill_of_lading=bl, customs_declaration=decl, **kw)


def record(number: str = DECL, **kw) -> CustomsRecord:
    """The customs record that matches ``with_docs()``."""
    fields = {
        "declaration_number": number,
        "exporter_uscc": HAIXIN,
        "destination_country": "DE",
        "currency": "USD",
        "amount": Decimal("100000.00"),
        "export_date": date(2026, 11, 10),
    }
    fields.update(kw)
    return CustomsRecord(**fields)


def customs(wf, *records: CustomsRecord) -> None:
    store_customs(wf.store.redis, {r.declaration_number: r for r in records})


def verified(wf, app):
    return wf.verify(wf.submit(app).deal.id)


def bank_terms(wf, bank_id: str, **fields) -> None:
    stored = json.loads(wf.store.redis.get(keys.bank(bank_id)))
    stored.update(fields)
    wf.store.redis.set(keys.bank(bank_id), json.dumps(stored))


# --- one document, one live deal --------------------------------------------------------------


def test_a_bill_of_lading_in_a_live_deal_is_refused_naming_it(wf):
    first = wf.submit(with_docs(decl=None)).deal
    # Another invoice of the same exporter, the same B/L typed in another case, without "-/".
    again = with_docs(bl="maeu24031201", decl=None, number="INV-HX-1002")
    with pytest.raises(DuplicateReceivable) as info:
        wf.submit(again)
    assert info.value.code == "DUPLICATE_RECEIVABLE"
    assert "bill of lading maeu24031201" in str(info.value)
    assert info.value.details == {
        "document": "bill_of_lading",
        "number": "maeu24031201",
        "invoice": "INV-HX-1002",
        "deal_id": first.id,  # the exporter's own deal: named
    }
    assert wf.store.redis.get(keys.receivable(HAIXIN, "DE-0001", "INV-HX-1002")) is None


def test_a_bill_of_lading_of_another_exporters_live_deal_is_refused_without_its_deal(wf):
    wf.submit(with_docs(decl=None))
    with pytest.raises(DuplicateReceivable) as info:
        wf.submit(dongfang_application(bill_of_lading=BL))
    assert info.value.details == {
        "document": "bill_of_lading", "number": BL, "invoice": "INV-DF-3001"}
    assert wf.store.redis.zcard(keys.by_exporter(DONGFANG)) == 0  # nothing of it committed


def test_a_declaration_of_another_exporters_live_deal_is_refused(wf):
    wf.submit(dongfang_application(customs_declaration=DECL))
    with pytest.raises(DuplicateReceivable) as info:
        wf.submit(with_docs(bl=None))
    assert info.value.details == {
        "document": "customs_declaration", "number": DECL, "invoice": "INV-HX-1001"}
    assert f"customs declaration {DECL}" in str(info.value)


def test_invoices_of_one_application_may_share_their_documents(wf):
    app = make_application(invoices=[
        {"number": "INV-HX-1001", "amount": "60000.00", "bill_of_lading": BL,
         "customs_declaration": DECL},
        {"number": "INV-HX-1002", "amount": "40000.00", "bill_of_lading": BL,
         "customs_declaration": DECL},
    ])
    deal = wf.submit(app).deal
    assert wf.store.redis.get(keys.bill_of_lading("MAEU24031201")) == deal.id
    assert wf.store.redis.get(keys.customs_declaration(DECL)) == deal.id


def test_concurrent_submits_never_both_hold_one_bill_of_lading(real_redis, make_workflow):
    wf = make_workflow(real_redis)
    # Twenty applications, each its own invoice (and half of them another exporter's), all
    # naming the same B/L: one commits, the rest are refused and leave nothing behind.
    def submit(i: int):
        if i % 2:
            return wf.submit(dongfang_application(number=f"INV-DF-{i}", bill_of_lading=BL))
        return wf.submit(with_docs(decl=None, number=f"INV-HX-{i}"))

    results = run_together(20, submit)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 19
    assert all(isinstance(e, DuplicateReceivable) and e.details["document"] == "bill_of_lading"
               for e in lost)
    assert real_redis.get(keys.bill_of_lading("MAEU24031201")) == won[0].deal.id
    assert len(real_redis.keys("xb:deal:*")) == 2  # the one deal and its event log
    assert len(real_redis.keys("xb:recv:*")) == 1


@pytest.mark.parametrize("ending", ["withdrawn", "rejected"])
def test_documents_are_free_again_once_their_deal_ended_unfinanced(wf, ending):
    if ending == "withdrawn":
        first = wf.submit(with_docs()).deal
        wf.withdraw(first.id, HAIXIN)
    else:
        first = verified(wf, with_docs(amount="600000.00", requested_amount="400000.00"))
        assert first.get("reasons") == ["LIMIT_INSUFFICIENT"]
    assert wf.store.redis.get(keys.bill_of_lading("MAEU24031201")) is None
    assert wf.store.redis.get(keys.customs_declaration(DECL)) is None
    # Another exporter may now use them (the goods were never financed).
    assert not wf.submit(dongfang_application(bill_of_lading=BL, customs_declaration=DECL)).replayed


def test_documents_stay_locked_while_financed_and_are_freed_when_repaid(wf):
    deal = verified(wf, with_docs())
    assert (deal.state, deal.bank_id) == (State.PENDING_BANK, "BOC-NB")
    deal = wf.decide(deal.id, "BOC-NB", Decision(True, "wang", amount=Decimal("80000.00")))
    deal = wf.disburse(deal.id, "BOC-NB", Disbursement("wang", Decimal("80000.00"), DEMO_TODAY,
                                                       "PAY-1"))
    assert deal.state == State.DISBURSED
    with pytest.raises(DuplicateReceivable):
        wf.submit(dongfang_application(customs_declaration=DECL))
    deal = wf.repay(deal.id, "BOC-NB", Repayment("wang", Decimal("80000.00"), DEMO_TODAY, "R-1"))
    assert deal.state == State.REPAID
    assert wf.store.redis.get(keys.bill_of_lading("MAEU24031201")) is None
    assert wf.store.redis.get(keys.customs_declaration(DECL)) is None


# --- banks that require the documents ---------------------------------------------------------


def routing_input(trade_documents: bool) -> RoutingInput:
    return RoutingInput("USD", Decimal(80000), Decimal(90000), date(2027, 1, 9), DEMO_TODAY,
                        True, 180, trade_documents)


def test_a_bank_requiring_documents_is_passed_over_for_a_deal_without_them(demo_reference):
    banks = [replace(b, requires_trade_documents=b.bank_id == "BOC-NB")
             for b in demo_reference.banks]
    offer, passed = next_offer(banks, routing_input(False), [])
    assert offer.bank_id == "ICBC-NB"
    assert passed == {"BOC-NB": "BANK_TRADE_DOCUMENTS_REQUIRED"}
    offer, passed = next_offer(banks, routing_input(True), [])
    assert (offer.bank_id, passed) == ("BOC-NB", {})


def test_routing_requires_both_documents_on_every_invoice(wf):
    bank_terms(wf, "BOC-NB", requires_trade_documents=True)
    only_bl = verified(wf, with_docs(decl=None))
    assert only_bl.bank_id == "ICBC-NB"
    assert only_bl.get("routing_notes") == {"BOC-NB": "BANK_TRADE_DOCUMENTS_REQUIRED"}
    both = verified(wf, with_docs(bl="OOLU-1", decl=DECL_2, number="INV-HX-1002"))
    assert both.bank_id == "BOC-NB"


def test_the_bank_setting_loads_from_the_reference_file(wf, demo_reference):
    assert not any(b.requires_trade_documents for b in wf.reference.banks())
    bank_terms(wf, "CCB-NB", requires_trade_documents=True)
    assert wf.reference.bank("CCB-NB").requires_trade_documents is True


# --- customs export records -----------------------------------------------------------------


def test_a_matching_customs_record_passes_every_check(wf):
    customs(wf, record())
    deal = verified(wf, with_docs())
    assert deal.state == State.PENDING_BANK
    results = check_results(deal)
    assert {k: v for k, v in results.items() if k.startswith("customs_")} == {
        "customs_record_found": "ok",
        "customs_exporter_matches": "ok",
        "customs_destination_matches": "ok",
        "customs_currency_matches": "ok",
        "customs_amount_matches": "ok",
    }


def test_a_declaration_customs_never_saw_is_refused_once_the_feed_is_in_use(wf):
    customs(wf, record(DECL_2))
    deal = verified(wf, with_docs())
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == ["CUSTOMS_RECORD_NOT_FOUND"]
    assert deal.get("failures") == [{"invoice": "INV-HX-1001", "check": "customs_record_found",
                                     "reason": "CUSTOMS_RECORD_NOT_FOUND"}]


def test_without_a_customs_feed_a_declaration_is_not_looked_up(wf):
    deal = verified(wf, with_docs())
    assert deal.state == State.PENDING_BANK
    results = check_results(deal)
    assert {k: v for k, v in results.items() if k.startswith("customs_")} == {
        "customs_record_found": "not_run",
        "customs_exporter_matches": "not_run",
        "customs_destination_matches": "not_run",
        "customs_currency_matches": "not_run",
        "customs_amount_matches": "not_run",
    }
    assert results["limit_has_room"] == "ok"  # the limit was reserved as for any deal


def test_no_declaration_named_leaves_the_customs_checks_out(wf):
    customs(wf, record())
    deal = verified(wf, make_application())
    assert deal.state == State.PENDING_BANK
    assert not any(name.startswith("customs_") for name in check_results(deal))


def test_customs_check_on_refuses_even_before_any_import(wf):
    wf.settings = replace(wf.settings, customs_check="on")
    assert verified(wf, with_docs()).get("reasons") == ["CUSTOMS_RECORD_NOT_FOUND"]


def test_customs_check_off_never_reads_the_records(wf):
    customs(wf, record(exporter_uscc=DONGFANG))
    wf.settings = replace(wf.settings, customs_check="off")
    deal = verified(wf, with_docs())
    assert deal.state == State.PENDING_BANK
    assert check_results(deal)["customs_record_found"] == "not_run"


@pytest.mark.parametrize(
    ("mismatch", "check"),
    [
        ({"exporter_uscc": DONGFANG}, "customs_exporter_matches"),
        ({"destination_country": "FR"}, "customs_destination_matches"),
        ({"currency": "EUR"}, "customs_currency_matches"),
        ({"amount": Decimal("80000.00")}, "customs_amount_matches"),
    ],
)
def test_each_kind_of_mismatch_is_refused_by_its_own_check(wf, mismatch, check):
    customs(wf, record(**mismatch))
    deal = verified(wf, with_docs())
    assert deal.state == State.REJECTED
    assert deal.get("reasons") == ["TRADE_DOCUMENTS_MISMATCH"]
    assert deal.get("failures") == [
        {"invoice": "INV-HX-1001", "check": check, "reason": "TRADE_DOCUMENTS_MISMATCH"}]


@pytest.mark.parametrize(
    ("invoiced", "passes"),
    [
        ("105000.00", True),  # declared 100,000 + 5 %: at the tolerance still matches
        ("105000.01", False),
        ("95000.00", True),
        ("94999.99", False),
    ],
)
def test_the_amount_tolerance_boundary(wf, invoiced, passes):
    customs(wf, record())
    deal = verified(wf, with_docs(amount=invoiced))
    assert (check_results(deal)["customs_amount_matches"] == "ok") is passes


def test_a_tighter_tolerance_from_the_settings(wf):
    customs(wf, record())
    wf.settings = replace(wf.settings, customs_tolerance=Decimal("0.01"))
    deal = verified(wf, with_docs(amount="102000.00"))
    assert check_results(deal)["customs_amount_matches"] == "TRADE_DOCUMENTS_MISMATCH"


def test_invoices_sharing_a_declaration_are_compared_by_their_sum(wf):
    customs(wf, record())
    app = make_application(invoices=[
        {"number": "INV-HX-1001", "amount": "60000.00", "customs_declaration": DECL},
        {"number": "INV-HX-1002", "amount": "40000.00", "customs_declaration": DECL},
    ])
    # INV-HX-1002 is not declared to the insurer: only that check fails, not the amounts.
    deal = verified(wf, app)
    assert check_results(deal)["customs_amount_matches"] == "ok"
    inflated = make_application(invoices=[
        {"number": "INV-HX-1003", "amount": "60000.00", "customs_declaration": DECL_2},
        {"number": "INV-HX-1004", "amount": "60000.00", "customs_declaration": DECL_2},
    ])
    customs(wf, record(DECL_2))
    deal = verified(wf, inflated)
    assert check_results(deal)["customs_amount_matches"] == "TRADE_DOCUMENTS_MISMATCH"


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "share"), [("5%", "0.05"), ("0.05", "0.05"), ("0", "0"),
                                            (" 2.5 % ", "0.025"), ("", "0.05")])
def test_the_tolerance_setting_reads_a_share_or_a_percentage(raw, share):
    assert load_settings({"XINBAO_CUSTOMS_TOLERANCE": raw}).customs_tolerance == Decimal(share)


@pytest.mark.parametrize("raw", ["-1%", "1.5", "five", "NaN", "Infinity"])
def test_a_bad_tolerance_is_refused_naming_it(raw):
    with pytest.raises(SettingsError, match="XINBAO_CUSTOMS_TOLERANCE"):
        load_settings({"XINBAO_CUSTOMS_TOLERANCE": raw})


def test_a_bad_customs_check_mode_is_refused():
    assert load_settings({"XINBAO_CUSTOMS_CHECK": "ON"}).customs_check == "on"
    with pytest.raises(SettingsError, match="XINBAO_CUSTOMS_CHECK"):
        load_settings({"XINBAO_CUSTOMS_CHECK": "yes"})
