"""The README's webhook receiver, run for real, takes what Xinbao posts and refuses forgeries."""

from __future__ import annotations

import json
import re
import threading
import time
import types
from http.server import HTTPServer

import pytest

from tests.conftest import ROOT
from workflow import keys, webhooks
from workflow.webhook_delivery import Deliveries, DeliveryConfig, http_post
from workflow.webhook_signature import sign

README = (ROOT / "README.md").read_text(encoding="utf-8")
RECEIVER = next(
    block
    for block in re.findall(r"```python\n(.*?)```", README, re.S)
    if "Xinbao-Signature" in block
)
SECRET = "whsec_readme-example-secret-0001"


@pytest.fixture
def receiver(monkeypatch):
    """The README's code as a module (not as __main__), serving on a free port."""
    monkeypatch.setenv("XINBAO_WEBHOOK_SECRET", SECRET)
    module = types.ModuleType("readme_receiver")
    exec(compile(RECEIVER, "README.md", "exec"), module.__dict__)  # noqa: S102 - our README
    server = HTTPServer(("127.0.0.1", 0), module.Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    module.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield module
    server.shutdown()
    server.server_close()


def test_the_readme_receiver_takes_xinbao_deliveries_once(receiver, fake_redis, capsys):
    fake_redis.hset(keys.bank("BOC-NB"), "name", "BOC-NB")
    hook = webhooks.add_webhook(fake_redis, "BOC-NB", receiver.url, now=0, secret=SECRET)
    event = {"v": 3, "type": "offered_to_bank", "at": "2027-01-04T09:00:00+00:00"}
    jobs = Deliveries(fake_redis, DeliveryConfig())
    for _ in range(2):  # the same event twice, as at-least-once delivery may post it
        fake_redis.xadd(keys.bank_feed("BOC-NB"), {"deal": "D-1", "event": json.dumps(event)})
        started = []
        jobs.dispatch(lambda hook_id, token, started=started: started.append((hook_id, token)))
        assert jobs.deliver(*started[0]) == 1
    assert capsys.readouterr().out == "D-1 offered_to_bank 2027-01-04T09:00:00+00:00\n"
    assert receiver.seen == {"D-1:3"}
    assert webhooks.webhook_stats(fake_redis)[0]["delivered"] == 2
    assert hook.secret == SECRET


@pytest.mark.parametrize(
    "forgery",
    ["tampered", "wrong secret", "old", "no signature", "junk header", "junk timestamp"],
)
def test_the_readme_receiver_refuses_forgeries(receiver, forgery):
    body = b'{"event_id":"D-1:1","deal_id":"D-1","type":"submitted","at":"x"}'
    now = str(int(time.time()))
    secret, signed_at, sent = SECRET, now, body
    if forgery == "tampered":
        sent = body.replace(b"submitted", b"approved")
    elif forgery == "wrong secret":
        secret = "whsec_someone-else-000000000"
    elif forgery == "old":
        signed_at = str(int(time.time()) - 301)
    headers = {
        "Xinbao-Event-Id": "D-1:1",
        "Xinbao-Timestamp": signed_at,
        "Xinbao-Signature": f"v1={sign(secret, signed_at, body)}",
        "Content-Type": "application/json",
    }
    if forgery == "no signature":
        del headers["Xinbao-Signature"]
    elif forgery == "junk header":
        headers["Xinbao-Signature"] = "v1=" + "é" * 64
    elif forgery == "junk timestamp":
        headers["Xinbao-Timestamp"] = "١٧٠٠٠٠٠٠٠٠"
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    assert http_post(receiver.url, encoded, sent, DeliveryConfig()).status == 401
    assert receiver.seen == set()
    # And the genuine request is taken.
    headers["Xinbao-Timestamp"] = now
    headers["Xinbao-Signature"] = f"v1={sign(SECRET, now, body)}"
    assert http_post(receiver.url, headers, body, DeliveryConfig()).status == 204
    assert receiver.seen == {"D-1:1"}
