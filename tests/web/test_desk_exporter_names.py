"""The queue's exporter names: every exporter on a page read in one round trip, not per row."""

from __future__ import annotations

from tests.conftest import DONGFANG, HAIXIN
from web.desk.views import _exporter_names
from workflow.deal import Deal


def test_names_of_a_page_in_one_round_trip(app, monkeypatch):
    reference = app.extensions["xinbao"].reference
    calls = []
    mget = reference.redis.mget
    monkeypatch.setattr(reference.redis, "mget", lambda k: calls.append(k) or mget(k))
    monkeypatch.setattr(reference, "exporter", None)  # never one lookup per exporter
    deals = [Deal({"id": str(n), "exporter_uscc": uscc})
             for n, uscc in enumerate([HAIXIN, DONGFANG, HAIXIN, "91000000UNKNOWN00X", ""])]
    with app.app_context():
        names = _exporter_names(deals)
    assert names == {
        HAIXIN: "Ningbo Haixin Trading Co., Ltd.",
        DONGFANG: "Ningbo Dongfang Textiles Co., Ltd.",
        "91000000UNKNOWN00X": "91000000UNKNOWN00X",  # not in the reference data: its USCC
    }
    assert len(calls) == 1
