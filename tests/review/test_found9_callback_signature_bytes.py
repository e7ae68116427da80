"""Review of issue 9: a non-ASCII callback signature is refused (401), never a 500."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from workflow.callback_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, callback_signed

SECRET = "a-callback-secret-of-the-insurer"
URL = "/api/v1/insurer/callbacks"


@pytest.fixture
def hooked(app):
    workflow = app.extensions["xinbao"]
    workflow.settings = dataclasses.replace(workflow.settings, insurer_callback_secret=SECRET)
    return app


@pytest.mark.parametrize("signature", ["é" * 64, "\u00ff", "sig\u00a0"])
def test_a_non_ascii_signature_is_refused_not_a_500(hooked, signature):
    body = json.dumps({"type": "job_processed", "jobId": "JOB-1"}).encode()
    rv = hooked.test_client().post(
        URL,
        data=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(int(time.time())),
            # Headers arrive as latin-1: anyone can send these bytes without the secret.
            SIGNATURE_HEADER: signature,
        },
    )
    assert rv.status_code == 401, rv.get_data(as_text=True)


@pytest.mark.parametrize("stamp", ["nan", "NaN", "-nan"])
def test_a_timestamp_that_is_not_a_number_is_stale(stamp):
    # NaN compares false with everything: "nan" must not pass the freshness window, or a
    # callback signed with it could be replayed forever.
    from workflow.callback_signature import sign_callback

    body = b"{}"
    signature = sign_callback(SECRET, stamp, body)
    assert not callback_signed(SECRET, stamp, signature, body, now=time.time())
