"""The replica transport: keep-alive pooling, the errors that allow a retry, and the ones that
do not."""

from __future__ import annotations

import asyncio
import json

import pytest

from tcdeploy.server.gateway import ReplicaConnectionError, UnixHttpTransport
from tcdeploy.server.gateway.transport import ReplicaReplyError, ReplicaTimeout

HEADERS = {"content-type": "application/json", "x-request-id": "rid-1"}


def body(**fields) -> bytes:
    return json.dumps({"inputs": [[1, 2]], **fields}).encode()


@pytest.mark.anyio
async def test_a_reply_comes_back_with_status_lowercase_headers_and_body(standin):
    transport = UnixHttpTransport()
    try:
        status, headers, reply = await transport.send(standin.address, "/invocations", body(), HEADERS)
    finally:
        await transport.aclose()
    assert status == 200
    assert headers["content-type"] == "application/json" and headers["x-batch-rows"] == "1"
    document = json.loads(reply)
    assert document["predictions"] == [0] and document["path"] == "/invocations"
    assert document["seen_request_id"] == "rid-1"


@pytest.mark.anyio
async def test_connections_are_kept_alive_and_pooled(standin):
    transport = UnixHttpTransport()
    try:
        for _ in range(20):
            await transport.send(standin.address, "/predict", body(), HEADERS)
        assert len(transport._idle[standin.address]) == 1
        sends = [transport.send(standin.address, "/predict", body(), HEADERS) for _ in range(8)]
        await asyncio.gather(*sends)
        assert 1 <= len(transport._idle[standin.address]) <= 8
    finally:
        await transport.aclose()


@pytest.mark.anyio
async def test_a_chunked_reply_is_read_whole(standin):
    transport = UnixHttpTransport()
    try:
        status, _, reply = await transport.send(standin.address, "/predict", body(chunked=True), HEADERS)
    finally:
        await transport.aclose()
    assert status == 200 and json.loads(reply) == {"predictions": [1, 2]}


@pytest.mark.anyio
async def test_no_listener_is_a_connection_error(tmp_path):
    transport = UnixHttpTransport()
    with pytest.raises(ReplicaConnectionError, match="cannot connect"):
        await transport.send(str(tmp_path / "nobody.sock"), "/predict", body(), HEADERS)


@pytest.mark.anyio
async def test_a_replica_restarted_behind_a_pooled_connection_is_reached_anew(replicas):
    first = replicas.start("ms-restart-0")
    transport = UnixHttpTransport()
    try:
        await transport.send(first.address, "/predict", body(), HEADERS)
        first.kill()
        second = replicas.start("ms-restart-0")  # same socket path, new process
        status, _, reply = await transport.send(second.address, "/predict", body(), HEADERS)
        assert status == 200 and json.loads(reply)["pid"] == second.process.pid
    finally:
        await transport.aclose()


@pytest.mark.anyio
async def test_a_replica_killed_mid_request_is_a_connection_error(replicas):
    victim = replicas.start("ms-victim-0")
    transport = UnixHttpTransport()
    try:
        pending = asyncio.create_task(transport.send(victim.address, "/predict", body(sleep=5), HEADERS))
        await asyncio.sleep(0.3)
        victim.kill()
        with pytest.raises(ReplicaConnectionError, match="before replying"):
            await pending
    finally:
        await transport.aclose()


@pytest.mark.anyio
async def test_a_slow_replica_times_out_and_its_connection_is_dropped(standin):
    transport = UnixHttpTransport(timeout=0.2)
    try:
        with pytest.raises(ReplicaTimeout, match="0.2 s"):
            await transport.send(standin.address, "/predict", body(sleep=1), HEADERS)
        assert not transport._idle.get(standin.address)
    finally:
        await transport.aclose()


@pytest.mark.anyio
async def test_a_reply_that_is_not_http_is_a_reply_error(tmp_path):
    address = str(tmp_path / "garbage.sock")

    async def garbage(reader, writer):
        await reader.read(100)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(garbage, path=address)
    transport = UnixHttpTransport()
    try:
        with pytest.raises(ReplicaReplyError, match="not valid HTTP"):
            await transport.send(address, "/predict", body(), HEADERS)
    finally:
        await transport.aclose()
        server.close()


@pytest.mark.anyio
async def test_header_values_with_line_breaks_are_refused(standin):
    transport = UnixHttpTransport()
    with pytest.raises(ValueError, match="CR or LF"):
        await transport.send(standin.address, "/predict", body(), {"x-request-id": "a\r\nx-evil: 1"})


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout"):
        UnixHttpTransport(timeout=0)
