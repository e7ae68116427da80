"""Review of issue 9: callback bodies at the edges. A signed body nested deeply made json raise
RecursionError (a 500); a body over 64 KiB sent chunked (no Content-Length) was cut and then
refused as forged (401) instead of too large (413)."""

from __future__ import annotations

import dataclasses
import io
import time

import pytest

from workflow.callback_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback

SECRET = "a-callback-secret-of-the-insurer"
URL = "/api/v1/insurer/callbacks"


@pytest.fixture
def client(app):
    workflow = app.extensions["xinbao"]
    workflow.settings = dataclasses.replace(workflow.settings, insurer_callback_secret=SECRET)
    return app.test_client()


def headers(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign_callback(SECRET, stamp, body)}


@pytest.mark.parametrize("body", [b"[" * 50_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000])
def test_a_deeply_nested_body_is_unreadable_not_a_500(client, body):
    assert len(body) < 64 * 1024
    rv = client.post(URL, data=body, headers=headers(body))
    assert rv.status_code == 400, rv.get_data(as_text=True)[:200]
    assert rv.get_json()["error"]["code"] == "BAD_JSON"


def test_a_chunked_body_over_the_limit_is_too_large(client):
    body = b'{"type":"job_processed","jobId":"J1","pad":"' + b"x" * 70_000 + b'"}'
    rv = client.post(
        URL,
        input_stream=io.BytesIO(body),
        headers={**headers(body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert rv.status_code == 413, rv.get_data(as_text=True)[:200]


def test_a_chunked_callback_within_the_limit_is_taken(client):
    body = b'{"type":"job_processed","jobId":"J-chunked"}'
    rv = client.post(
        URL,
        input_stream=io.BytesIO(body),
        headers={**headers(body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert rv.status_code == 200, rv.get_data(as_text=True)[:200]
