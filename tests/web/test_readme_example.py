"""The README's "Try it" commands, run by bash, work against the demo loaded on any day."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta

import pytest

from tests.conftest import ROOT, Clock, demo_text
from tests.web.conftest import EAGER
from web import create_app
from workflow.reference import parse_reference_json, store_reference

README = (ROOT / "README.md").read_text(encoding="utf-8")
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
SUBMIT = next(block for block in SH_BLOCKS if "<<EOF" in block)
FOLLOW_UP = next(block for block in SH_BLOCKS if "/decision" in block)

# Far-apart days: the demo's fixed dates used to stop working on 2027-01-09.
DAYS = [date(2026, 11, 24), date(2027, 6, 1), date(2030, 1, 1), date(2041, 2, 28)]


def readme_body(today: date) -> dict:
    """The JSON body the README's submit command sends on ``today``, as bash builds it.

    ``date`` answers as GNU date would on ``today``; ``curl`` prints what it would send.
    """
    if (
        shutil.which("bash") is None
        or subprocess.run(
            ["date", "-u", "-d", "2030-01-01 14 days ago", "+%F"], capture_output=True
        ).returncode
    ):
        pytest.skip("needs bash and GNU date")
    shell = (
        f'date() {{ command date -u -d "{today.isoformat()} $3" +%F; }}\n'
        "curl() { cat; }\n"
        f"{SUBMIT}"
    )
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_readme_submits_with_gnu_date_offsets():
    assert "date -u -d '14 days ago' +%F" in SUBMIT
    assert "curl -i -X POST 'http://127.0.0.1:5000/api/v1/deals'" in SUBMIT
    # Every URL with a query string is quoted (zsh would glob an unquoted "?").
    for url in re.findall(r"\S*http://\S+", README):
        if "?" in url:
            assert url[0] in "'\"", url


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_readme_example_reaches_the_bank_on_any_day(today, fake_redis, settings):
    reference = parse_reference_json(demo_text(today))
    store_reference(fake_redis, reference)
    app = create_app(settings, redis_client=fake_redis, celery=dict(EAGER))
    app.config["TESTING"] = True
    app.extensions["xinbao"].clock = Clock(datetime.combine(today, time(9), tzinfo=UTC))
    client = app.test_client()
    exporter = {"Authorization": "Bearer demo-exporter-haixin-0001"}
    bank = {"Authorization": "Bearer demo-bank-boc-nb-0001"}

    body = readme_body(today)
    assert body["invoices"][0]["shipment_date"] == (today - timedelta(days=14)).isoformat()
    rv = client.post(
        "/api/v1/deals", json=body, headers={**exporter, "Idempotency-Key": "first-try"}
    )
    assert rv.status_code == 202, rv.get_json()
    assert rv.get_json()["state"] == "submitted"
    location = rv.headers["Location"]
    assert location == f"/api/v1/deals/{rv.get_json()['id']}"

    deal = client.get(location, headers=exporter).get_json()
    assert deal["state"] == "pending_bank", deal
    assert deal["bank"]["bank_id"] == "BOC-NB"
    assert deal["failures"] == []
    queue = client.get("/api/v1/deals?state=pending_bank", headers=bank).get_json()
    assert [d["id"] for d in queue["items"]] == [deal["id"]]

    decision = json.loads(re.search(r"-d '(\{.*\})'", FOLLOW_UP).group(1))
    assert decision["officer"] == "Li Wei"
    rv = client.post(f"{location}/decision", json=decision, headers=bank)
    assert rv.status_code == 200, rv.get_json()
    assert rv.get_json()["state"] == "approved"
    assert rv.get_json()["decision"]["officer"] == "Li Wei"
    events = client.get(f"{location}/events", headers=exporter).get_json()["events"]
    assert events[-1]["by"] == "bank:BOC-NB"  # the exporter reads the bank, not its officer
