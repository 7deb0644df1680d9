"""TC3 verification against requests the official SDK really signs and sends."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from tcdeploy.protocol import errors
from tcdeploy.protocol.signature import verify

SECRET_ID, SECRET_KEY = "AKIDsigtest", "sig-test-key"


@pytest.fixture(scope="module")
def captured():
    """One request as the SDK signs it, caught by a loopback HTTP server."""
    seen = {}

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["headers"] = {k.lower(): v for k, v in self.headers.items()}
            seen["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            seen["path"] = self.path
            reply = json.dumps({"Response": {"RequestId": "r"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{server.server_port}"))
        client = CommonClient(
            "wedata", "2025-10-10", credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile
        )
        client.call_json("GetMLModelService", {"WorkspaceId": "ws", "ServiceId": "svc-1"})
    finally:
        server.shutdown()
    return seen


def check(captured, *, headers=None, body=None, keys=None, now=None):
    return verify(
        "POST",
        captured["path"],
        "",
        headers or captured["headers"],
        captured["body"] if body is None else body,
        (keys or {SECRET_ID: SECRET_KEY}).get,
        time.time() if now is None else now,
    )


def code_of(call) -> str:
    with pytest.raises(errors.ApiError) as caught:
        call()
    return caught.value.code


def test_an_sdk_signed_request_verifies(captured):
    signed = check(captured)
    assert (signed.secret_id, signed.service, signed.action, signed.version) == (
        SECRET_ID,
        "wedata",
        "GetMLModelService",
        "2025-10-10",
    )
    assert signed.region == "ap-guangzhou"


def test_a_tampered_body_is_refused(captured):
    body = captured["body"].replace(b"svc-1", b"svc-2")
    assert code_of(lambda: check(captured, body=body)) == errors.SIGNATURE_FAILURE


def test_a_tampered_signed_header_is_refused(captured):
    headers = {**captured["headers"], "host": "evil.example:80"}
    assert code_of(lambda: check(captured, headers=headers)) == errors.SIGNATURE_FAILURE


def test_a_tampered_timestamp_is_refused(captured):
    headers = {**captured["headers"], "x-tc-timestamp": str(int(captured["headers"]["x-tc-timestamp"]) + 1)}
    assert code_of(lambda: check(captured, headers=headers)) == errors.SIGNATURE_FAILURE


def test_the_wrong_secret_key_is_refused(captured):
    assert code_of(lambda: check(captured, keys={SECRET_ID: "another"})) == errors.SIGNATURE_FAILURE


def test_an_unknown_secret_id_is_refused(captured):
    assert code_of(lambda: check(captured, keys={"AKIDother": SECRET_KEY})) == errors.SECRET_ID_NOT_FOUND


def test_a_request_replayed_after_the_window_is_refused(captured):
    sent = int(captured["headers"]["x-tc-timestamp"])
    assert check(captured, now=sent + 299)
    assert code_of(lambda: check(captured, now=sent + 301)) == errors.SIGNATURE_EXPIRE
    assert code_of(lambda: check(captured, now=sent - 301)) == errors.SIGNATURE_EXPIRE


@pytest.mark.parametrize("header", ["authorization", "x-tc-action", "x-tc-timestamp", "x-tc-version"])
def test_a_missing_header_is_refused(captured, header):
    headers = {k: v for k, v in captured["headers"].items() if k != header}
    assert code_of(lambda: check(captured, headers=headers)) == errors.INVALID_AUTHORIZATION


def test_a_malformed_authorization_is_refused(captured):
    headers = {**captured["headers"], "authorization": "Basic dXNlcjpwYXNz"}
    assert code_of(lambda: check(captured, headers=headers)) == errors.INVALID_AUTHORIZATION
