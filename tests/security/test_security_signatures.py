"""Signatures end to end: requests the official SDK really signed, caught on their way to the server,
then replayed late or tampered with. (tests/protocol checks `verify` alone; here the server answers.)

TC3 as the SDK uses it signs the body, Host and Content-Type, and puts the timestamp and the API
service in the string to sign; X-TC-Action is not signed unless the client lists it. A captured
request can therefore be replayed within the five-minute window (Tencent Cloud behaves the same:
TC3 has no nonce), never after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import SimpleNamespace
from unittest import mock

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.support.cloudapi import call

from .security_estate import Estate, envelope_of, error_code, signed_headers

WINDOW = 300


@dataclass(frozen=True)
class Captured:
    headers: dict[str, str]
    body: bytes

    def send(self, estate: Estate) -> dict:
        reply = httpx.post(estate.server.url + "/", content=self.body, headers=self.headers, timeout=30)
        return envelope_of(reply)

    def with_header(self, name: str, value: str) -> Captured:
        return replace(self, headers={**self.headers, name: value})


@contextmanager
def sdk_requests(clock_shift: float = 0.0):
    """Every request the SDK sends meanwhile, as sent; the SDK's clock moved by `clock_shift` s."""
    seen: list[Captured] = []
    real_send = requests.Session.send

    def send(session, prepared, **kwargs):
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        headers = {k: v for k, v in prepared.headers.items() if k.lower() not in ("content-length", "connection")}
        seen.append(Captured(headers, body))
        return real_send(session, prepared, **kwargs)

    clock = SimpleNamespace(time=lambda: time.time() + clock_shift, sleep=time.sleep)
    with mock.patch.object(requests.Session, "send", send), mock.patch.object(abstract_client, "time", clock):
        yield seen


def get_b(estate: Estate) -> dict:
    return {"WorkspaceId": estate.b.workspace, "ServiceId": estate.b.service_id}


def capture_get(estate: Estate, clock_shift: float = 0.0) -> tuple[Captured, dict]:
    """A GetMLModelService the SDK signed (with its clock shifted) and the server answered."""
    with sdk_requests(clock_shift) as seen:
        data = call(estate.client(estate.admin), "GetMLModelService", get_b(estate))["Data"]
    (captured,) = seen
    return captured, data


def test_a_captured_request_works_inside_the_window_and_is_refused_after_it(estate):
    margin = 6  # seconds left in the window for the first two sends
    captured, first = capture_get(estate, clock_shift=-(WINDOW - margin))
    signed_at = int(captured.headers["X-TC-Timestamp"])
    again = captured.send(estate)
    assert again["Data"]["ServiceId"] == first["ServiceId"], again
    while time.time() - signed_at <= WINDOW + 1:
        time.sleep(0.2)
    late = captured.send(estate)
    assert error_code(late) == "AuthFailure.SignatureExpire", late
    assert "300" in late["Error"]["Message"]


def test_a_request_signed_by_a_clock_running_ahead_is_refused(estate):
    with pytest.raises(TencentCloudSDKException) as caught, sdk_requests(clock_shift=WINDOW + 60):
        call(estate.client(estate.admin), "GetMLModelService", get_b(estate))
    assert caught.value.code == "AuthFailure.SignatureExpire"


def _swap_credential(part: int, value: str | Callable[[Estate], str]):
    """Replace one part of `Credential=<id>/<date>/<service>/tc3_request`."""

    def tamper(c: Captured, estate: Estate) -> Captured:
        auth = c.headers["Authorization"]
        head, rest = auth.split("Credential=", 1)
        credential, tail = rest.split(",", 1)
        parts = credential.split("/")
        parts[part] = value(estate) if callable(value) else value
        return c.with_header("Authorization", f"{head}Credential={'/'.join(parts)},{tail}")

    return tamper


def _flip_signature(c: Captured, estate: Estate) -> Captured:
    auth = c.headers["Authorization"]
    last = auth[-1]
    return c.with_header("Authorization", auth[:-1] + ("0" if last != "0" else "1"))


TAMPERINGS = {
    "body": lambda c, e: replace(c, body=c.body.replace(e.b.service_id.encode(), e.a.service_id.encode())),
    "body whitespace": lambda c, e: replace(c, body=c.body + b" "),
    "host": lambda c, e: c.with_header("Host", f"localhost:{e.server.port}"),
    "content-type": lambda c, e: c.with_header("Content-Type", "application/json; charset=latin-1"),
    "timestamp": lambda c, e: c.with_header("X-TC-Timestamp", str(int(c.headers["X-TC-Timestamp"]) - 1)),
    "another key's SecretId": _swap_credential(0, lambda e: e.b.key.secret_id),
    "credential date": _swap_credential(1, "2020-01-01"),
    "credential service": _swap_credential(2, "tione"),
    "signature": _flip_signature,
}


@pytest.fixture(scope="module")
def fresh_get(estate):
    return capture_get(estate)


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_a_tampered_request_is_refused(estate, fresh_get, what):
    captured, first = fresh_get
    untouched = captured.send(estate)
    assert untouched["Data"]["ServiceId"] == first["ServiceId"], "the capture itself must pass"
    reply = TAMPERINGS[what](captured, estate).send(estate)
    assert error_code(reply) == "AuthFailure.SignatureFailure", (what, reply)


def test_dropping_host_from_the_signed_headers_is_refused(estate, fresh_get):
    captured, _ = fresh_get
    auth = captured.headers["Authorization"].replace("SignedHeaders=content-type;host", "SignedHeaders=content-type")
    reply = captured.with_header("Authorization", auth).send(estate)
    assert error_code(reply) == "AuthFailure.InvalidAuthorization", reply


def test_a_signed_action_cannot_be_swapped(estate):
    """A client that signs X-TC-Action (Tencent's documented example does) is protected from an
    action swapped in transit: a Get turned into a Delete is refused."""
    host = f"127.0.0.1:{estate.server.port}"
    body = httpx.Request("POST", "/", json=get_b(estate)).content
    headers = signed_headers(host, "GetMLModelService", body, estate.admin, sign_action=True)
    ok = envelope_of(httpx.post(estate.server.url + "/", content=body, headers=headers, timeout=30))
    assert ok["Data"]["ServiceId"] == estate.b.service_id, ok
    swapped = {**headers, "X-TC-Action": "DeleteMLModelService"}
    reply = envelope_of(httpx.post(estate.server.url + "/", content=body, headers=swapped, timeout=30))
    assert error_code(reply) == "AuthFailure.SignatureFailure", reply
    assert call(estate.client(estate.admin), "GetMLModelService", get_b(estate))["Data"]["Status"] == "RUNNING"


def test_one_keys_signature_does_not_pass_for_another_key(estate):
    """Signed with A's SecretKey but presented as B's SecretId."""
    host = f"127.0.0.1:{estate.server.port}"
    body = httpx.Request("POST", "/", json=get_b(estate)).content
    headers = signed_headers(host, "GetMLModelService", body, estate.a.key)
    headers["Authorization"] = headers["Authorization"].replace(estate.a.key.secret_id, estate.b.key.secret_id)
    reply = envelope_of(httpx.post(estate.server.url + "/", content=body, headers=headers, timeout=30))
    assert error_code(reply) == "AuthFailure.SignatureFailure", reply


# What HTTP lets through in a header value: printable latin-1, no surrounding blanks.
_header_text = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=300),
    st.sampled_from(["", "TC3-HMAC-SHA256", "-1", "1e9", "99999999999999999999999", "+1700000000", "0x10"]),
).map(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.one_of(
        _header_text,
        st.builds(
            "TC3-HMAC-SHA256 Credential={}/{}/{}/tc3_request, SignedHeaders={}, Signature={}".format,
            _header_text,
            st.sampled_from(["2026-01-01", "9999-99-99", "0000-00-00"]),
            st.sampled_from(["wedata", "tione", "cvm", "a-b"]),
            st.sampled_from(["content-type;host", "host", "content-type;host;x-tc-action", "x"]),
            st.text("0123456789abcdef", min_size=64, max_size=64),
        ),
    ),
    timestamp=st.one_of(_header_text, st.integers().map(str)),
    action=_header_text,
    version=st.one_of(_header_text, st.sampled_from(["2025-10-10", "2021-11-11"])),
)
def test_garbage_auth_headers_get_an_auth_error_in_the_envelope(estate, authorization, timestamp, action, version):
    headers = {
        "Content-Type": "application/json",
        "Authorization": authorization,
        "X-TC-Timestamp": timestamp,
        "X-TC-Action": action,
        "X-TC-Version": version,
    }
    encoded = {k: v.encode("latin-1") for k, v in headers.items()}
    reply = envelope_of(httpx.post(estate.server.url + "/", content=b"{}", headers=encoded, timeout=30))
    assert (error_code(reply) or "").startswith("AuthFailure."), reply
