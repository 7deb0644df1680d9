"""The pod page of `CreateModelServicePodUrl`: only with its short-lived token, only on the
server's own host name.

Expiry is tested without waiting five minutes by minting links the way the server does
(`ServerSecret.pod_token`) with the server's own secret from the data dir, dated in the past. A link
minted the same way with a future date opens the page, so the minting is the server's.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import quote

import httpx
import pytest

from tcdeploy.server.control.api import POD_URL_TTL
from tcdeploy.server.control.backend import ServerSecret
from tests.support.cloudapi import call

from .security_estate import Estate


def pod_url(estate: Estate) -> dict:
    b = estate.b
    return call(
        estate.client(b.key),
        "CreateModelServicePodUrl",
        {
            "WorkspaceId": b.workspace,
            "ServiceId": b.service_id,
            "PodName": b.pod_name,
        },
    )["Data"]


def minted(estate: Estate, pod_name: str, expires: int) -> str:
    secret = bytes.fromhex((estate.data_dir / "server-secret").read_text().strip())
    return ServerSecret(secret).pod_token(pod_name, expires)


def page(estate: Estate, token: str | None, pod_name: str | None = None, host: str | None = None) -> httpx.Response:
    url = f"{estate.server.url}/pods/{pod_name or estate.b.pod_name}"
    if token is not None:
        url += f"?token={quote(token)}"
    headers = {"Host": host} if host else {}
    return httpx.get(url, headers=headers, timeout=30)


def test_the_link_opens_the_page_and_says_when_it_expires(estate):
    data = pod_url(estate)
    expires = int(data["Url"].split("token=", 1)[1].split(".", 1)[0])  # the token starts with its expiry
    assert abs(expires - (time.time() + POD_URL_TTL)) < 15 and POD_URL_TTL == 300
    reply = httpx.get(data["Url"], timeout=30)
    assert reply.status_code == 200 and estate.b.pod_name in reply.text
    assert "<dt>Node</dt><dd>this machine</dd>" in reply.text  # the local runtime: no cluster node
    assert reply.headers["cache-control"] == "no-store"


def test_a_link_past_its_expiry_is_refused(estate):
    pod = estate.b.pod_name
    assert page(estate, minted(estate, pod, int(time.time()) + 60)).status_code == 200
    for age in (1, POD_URL_TTL + 1, 10**6):
        assert page(estate, minted(estate, pod, int(time.time()) - age)).status_code == 403, age


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        "1.2",
        ".",
        "9999999999.",
        "9999999999." + "0" * 64,
        "٩٩٩٩٩٩٩٩٩٩.abc",  # digits, though not ASCII ones
        "²." + "0" * 64,
        "9" * 5000 + ".x",  # more digits than Python turns into an int by default
        "-1." + "0" * 64,
    ],
)
def test_the_page_needs_its_token(estate, token):
    reply = page(estate, token)
    assert reply.status_code == 403 and reply.json()["message"], reply.text[:200]


def test_a_link_opens_only_its_own_pod(estate):
    data = pod_url(estate)
    token = data["Url"].split("token=", 1)[1]
    other = "ms-00000000-00000"
    assert page(estate, token, pod_name=other).status_code == 403
    # A token minted for another pod does not open this one either.
    assert page(estate, minted(estate, other, int(time.time()) + 60)).status_code == 403


@pytest.mark.parametrize(
    "host,status",
    [
        ("{ip}:{port}", 200),
        ("localhost:{port}", 200),
        ("evil.example:{port}", 421),
        ("{ip}", 421),
        ("{ip}:{port}.evil.example", 421),
        ("evil.example", 421),
    ],
)
def test_the_page_is_served_only_on_the_servers_own_host(estate, host, status):
    token = pod_url(estate)["Url"].split("token=", 1)[1]
    reply = page(estate, token, host=host.format(ip="127.0.0.1", port=estate.server.port))
    assert reply.status_code == status, reply.text[:200]


def test_a_request_without_a_host_is_refused(estate):
    token = pod_url(estate)["Url"].split("token=", 1)[1]
    with socket.create_connection(("127.0.0.1", estate.server.port), timeout=30) as conn:
        conn.sendall(f"GET /pods/{estate.b.pod_name}?token={token} HTTP/1.0\r\n\r\n".encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert status in (400, 421), reply[:300]
