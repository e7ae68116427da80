"""Review of issue 10: a webhook timestamp of hundreds of digits is refused, never an exception.

``int("9" * 400)`` is fine but subtracting it from a float overflows, and past 4300 digits
``int()`` itself raises: ``verify_signature`` promised never to raise on malformed input, and
the README's receiver answered such a request with a 500 instead of a 401.
"""

from __future__ import annotations

import time

import pytest

from tests.web.test_readme_webhook_example import receiver  # noqa: F401 - the fixture
from workflow.webhook_delivery import DeliveryConfig, http_post
from workflow.webhook_signature import sign, verify_signature

SECRET = "whsec_readme-example-secret-0001"
BODY = b'{"event_id":"D-1:1","deal_id":"D-1","type":"submitted","at":"x"}'


@pytest.mark.parametrize("digits", [400, 5000])
def test_verify_signature_refuses_a_huge_timestamp(digits):
    stamp = "9" * digits
    assert verify_signature(SECRET, stamp, BODY, f"v1={'0' * 64}") is False


def test_verify_signature_still_takes_a_genuine_one():
    now = str(int(time.time()))
    assert verify_signature(SECRET, now, BODY, f"v1={sign(SECRET, now, BODY)}") is True


@pytest.mark.parametrize("digits", [400, 5000])
def test_the_readme_receiver_answers_401_to_a_huge_timestamp(receiver, digits):  # noqa: F811
    headers = {
        "Xinbao-Event-Id": "D-1:1",
        "Xinbao-Timestamp": "9" * digits,
        "Xinbao-Signature": "v1=" + "0" * 64,
        "Content-Type": "application/json",
    }
    assert http_post(receiver.url, headers, BODY, DeliveryConfig()).status == 401
    assert receiver.seen == set()
