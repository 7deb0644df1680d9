"""Overload without collapse: past what its replicas queue a version answers a fast 503 with
Retry-After, and what it queued is answered within the request timeout (scored, or a 504 the
replica never spends work on); a client that trickles its request is answered 408 and closed; an
oversized head is refused; the server keeps serving through all of it."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import httpx
import pytest

from tcdeploy.server.gateway.ratelimit import QUEUE_PER_REPLICA
from tests.support.cloudapi import common_client
from tests.support.server import start_server

from .resilience_helpers import deploy, group_url, iris_body, kill_replicas

READ_TIMEOUT = 2  # s, the server's TCDEPLOY_REQUEST_READ_TIMEOUT here
REQUEST_TIMEOUT = 5  # s, its TCDEPLOY_REQUEST_TIMEOUT


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory, sentinel_model_dir):
    server = start_server(
        tmp_path_factory.mktemp("overload") / "data",
        extra_env={
            "TCDEPLOY_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
            "TCDEPLOY_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        },
    )
    try:
        svc = deploy(common_client(server, "wedata"), "overload", sentinel_model_dir)
        yield server, group_url(server, svc["ServiceGroupId"])
    finally:
        server.stop(signal.SIGTERM)
        kill_replicas(server.data_dir)


def raw_exchange(server, data: bytes, wait: float = 15.0) -> tuple[bytes, float]:
    """Send `data` and nothing more; return what the server answers before it closes, and when."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def still_serving(url: str) -> bool:
    return httpx.post(url, content=iris_body(), timeout=30).status_code == 200


def test_more_requests_than_a_replica_queues_are_refused_fast_and_the_rest_answered_in_time(busy_server):
    server, url = busy_server
    offered = QUEUE_PER_REPLICA + 150

    async def timed(client: httpx.AsyncClient, body: bytes) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        reply = await client.post(url, content=body)
        return reply, time.monotonic() - started

    async def offer() -> list[tuple[httpx.Response, float]]:
        limits = httpx.Limits(max_connections=offered, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT + 30) as client:
            body = iris_body(sleep_s=0.25)  # a slow model: the replica cannot keep up
            return await asyncio.gather(*[timed(client, body) for _ in range(offered)])

    replies = asyncio.run(offer())
    by_status: dict[int, list[tuple[httpx.Response, float]]] = {}
    for reply, took in replies:
        by_status.setdefault(reply.status_code, []).append((reply, took))
    assert set(by_status) <= {200, 503, 504}, sorted(by_status)
    assert len(by_status.get(503, [])) >= offered - QUEUE_PER_REPLICA and by_status.get(200)
    for reply, _ in by_status[503]:
        assert reply.headers["retry-after"] == "1" and reply.json()["error_code"] == "OVERLOADED"
    for reply, _ in by_status.get(504, []):
        assert reply.json()["error_code"] == "DEADLINE_EXCEEDED", reply.text
    # Every request has its answer within the deadline (and a little for a loaded machine).
    assert max(took for _, took in replies) < REQUEST_TIMEOUT + 10
    assert still_serving(url)


def test_a_request_trickled_in_is_answered_408_and_closed(busy_server):
    server, url = busy_server
    path = url.removeprefix(server.url)
    for head in (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-".encode(),  # headers never end
        f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{"data'.encode(),  # body never ends
        b"",  # a connection that never sends a byte
    ):
        received, took = raw_exchange(server, head)
        assert took < READ_TIMEOUT + 10
        assert not head or received.startswith(b"HTTP/1.1 408"), received[:200]
    assert still_serving(url)


def test_an_oversized_head_is_refused_and_the_server_serves_on(busy_server):
    server, url = busy_server
    path = url.removeprefix(server.url)
    received, _ = raw_exchange(server, f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 200_000}\r\n\r\n".encode())
    assert received.startswith(b"HTTP/1.1 4"), received[:200]
    assert still_serving(url)
