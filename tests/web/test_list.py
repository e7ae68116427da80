"""GET /api/v1/deals: an exporter's deals, newest first; a bank's deals and its work queue."""

from __future__ import annotations

import pytest

from tests.web.conftest import deal_body, dongfang_body, error_of


def _create_many(api, count: int, prefix: str = "INV-HX-10") -> list[str]:
    ids = []
    for n in range(1, count + 1):
        body = deal_body(f"{prefix}{n:02d}", requested_amount="40000.00")
        body["invoices"][0]["amount"] = "50000.00"
        ids.append(api.create(body)["id"])
        api.clock.advance(seconds=1)
    return ids


def test_pages_of_an_exporters_deals_newest_first(api):
    ids = _create_many(api, 5)
    pages = []
    for page in (1, 2, 3):
        rv = api.list("haixin", page=page, per_page=2)
        assert rv.status_code == 200
        body = rv.get_json()
        assert (body["page"], body["per_page"], body["total"]) == (page, 2, 5)
        pages.append([d["id"] for d in body["items"]])
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [deal_id for p in pages for deal_id in p]
    assert len(set(flat)) == 5
    assert flat == list(reversed(ids))
    beyond = api.list("haixin", page=4, per_page=2).get_json()
    assert beyond["items"] == [] and beyond["total"] == 5


def test_default_page_and_items_are_full_deals(api):
    deal = api.create()
    body = api.list("haixin").get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 20, 1)
    assert body["items"] == [deal]


def test_an_exporter_lists_only_its_own_deals(api):
    _create_many(api, 2)
    api.create(dongfang_body(), who="dongfang")
    assert api.list("haixin").get_json()["total"] == 2
    other = api.list("dongfang").get_json()
    assert other["total"] == 1
    assert other["items"][0]["exporter_uscc"] == "91330200MA2CD3E4F9"
    assert api.list("nanhai").get_json() == {"items": [], "page": 1, "per_page": 20, "total": 0}


def test_bank_queue_shows_only_its_pending_deals(api):
    first, second, third = _create_many(api, 3)
    dongfang = api.create(dongfang_body(), who="dongfang")["id"]  # straight to ICBC
    api.clock.advance(seconds=1)
    assert api.decide(second, "boc", decision="decline", reason="no").status_code == 200
    assert api.decide(third, "boc", decision="approve").status_code == 200

    queue = api.list("boc", state="pending_bank").get_json()
    assert queue["total"] == 1
    assert [d["id"] for d in queue["items"]] == [first]
    assert all(d["state"] == "pending_bank" and d["bank"]["bank_id"] == "BOC-NB"
               for d in queue["items"])

    # Everything ever offered to BOC, newest offer first.
    everything = api.list("boc").get_json()
    assert everything["total"] == 3
    assert [d["id"] for d in everything["items"]] == [third, second, first]
    declined = next(d for d in everything["items"] if d["id"] == second)
    # It sees its own decline, but not where the deal went next.
    assert declined["bank"] is None and declined["decision"]["bank_id"] == "BOC-NB"

    # 85% of the insured 45,000 is below ICBC's minimum: the declined deal went on to CCB.
    icbc = api.list("icbc", state="pending_bank").get_json()
    assert [d["id"] for d in icbc["items"]] == [dongfang]
    ccb = api.list("ccb", state="pending_bank").get_json()
    assert [d["id"] for d in ccb["items"]] == [second]
    assert ccb["items"][0]["bank"]["bank_id"] == "CCB-NB"


def test_bank_queue_pages_most_urgent_first(api):
    ids = _create_many(api, 3)
    page1 = api.list("boc", state="pending_bank", per_page=2).get_json()
    page2 = api.list("boc", state="pending_bank", per_page=2, page=2).get_json()
    assert page1["total"] == page2["total"] == 3
    assert [d["id"] for d in page1["items"] + page2["items"]] == ids


@pytest.mark.parametrize("query", [
    {"per_page": 0}, {"per_page": 1000}, {"per_page": 101}, {"per_page": "ten"},
    {"page": 0}, {"page": -1}, {"page": "x"}, {"state": "approved"}, {"sort": "id"},
])
def test_bad_queries_are_422(api, query):
    error = error_of(api.list("boc", **query), 422, "VALIDATION_FAILED")
    assert set(query) <= set(error["fields"])


def test_exporters_cannot_filter_by_state(api):
    error = error_of(api.list("haixin", state="pending_bank"), 422, "VALIDATION_FAILED")
    assert "state" in error["fields"]


def test_listing_needs_a_token(client):
    rv = client.get("/api/v1/deals")
    error_of(rv, 401, "UNAUTHENTICATED")
    assert rv.headers["WWW-Authenticate"].startswith("Bearer")
