"""The gateway's part in riding out failures, without processes: waiting for a replica on its way
back, one retry at a time, and telling a request lost with its replica from one never sent."""

from __future__ import annotations

import asyncio
import time

import pytest

from tcdeploy.server.gateway import (
    Gateway,
    Group,
    Replica,
    ReplicaConnectionError,
    ReplicaLost,
    RouteTable,
    UnixHttpTransport,
    Version,
)
from tcdeploy.server.gateway.picking import ReplicaPicker
from tcdeploy.server.gateway.routes import NoRoute

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def table(status: str = "Running", expected: int = 1, replicas: int = 0) -> RouteTable:
    routes = RouteTable()
    routes.put_group(group(status, expected))
    routes.set_replicas("svc-a", [Replica(f"ms-a-{i}", f"/nowhere/{i}.sock") for i in range(replicas)])
    return routes


def group(status: str = "Running", expected: int = 1) -> Group:
    version = Version(
        service_id="svc-a",
        service_name="a",
        group_id="grp-a",
        version="1",
        weight=100,
        status=status,
        expected_replicas=expected,
    )
    return Group(
        group_id="grp-a",
        name="a",
        workspace_id="default",
        auth_enabled=False,
        token_hashes=frozenset(),
        versions={"svc-a": version},
    )


async def later(delay: float, action) -> None:
    await asyncio.sleep(delay)
    action()


async def test_a_request_waits_for_a_replica_on_its_way_back():
    routes = table()
    picker = ReplicaPicker(routes, replica_wait=5)
    back = Replica("ms-a-0", "/nowhere/0.sock")
    started = time.monotonic()
    asyncio.get_running_loop().create_task(later(0.2, lambda: routes.set_replicas("svc-a", [back])))
    _, version = await picker.version(routes.group("grp-a"), None, picker.deadline())
    assert version.service_id == "svc-a" and 0.15 < time.monotonic() - started < 2
    assert await picker.replica("svc-a", None, picker.deadline()) is back


@pytest.mark.parametrize("status,expected", [("Running", 0), ("Abnormal", 1), ("Stopped", 0), ("Creating", 1)])
async def test_no_wait_when_no_replica_is_coming(status, expected):
    routes = table(status, expected)
    picker = ReplicaPicker(routes, replica_wait=5)
    started = time.monotonic()
    with pytest.raises(NoRoute):
        await picker.version(routes.group("grp-a"), None, picker.deadline())
    with pytest.raises(ReplicaConnectionError, match="no ready replica"):
        await picker.replica("svc-a", None, picker.deadline())
    assert time.monotonic() - started < 0.1


async def test_the_wait_ends_at_the_deadline_or_when_the_service_stops():
    routes = table()
    picker = ReplicaPicker(routes, replica_wait=0.3)
    started = time.monotonic()
    with pytest.raises(NoRoute):
        await picker.version(routes.group("grp-a"), None, picker.deadline())
    assert 0.25 < time.monotonic() - started < 1
    picker = ReplicaPicker(routes, replica_wait=30)
    asyncio.get_running_loop().create_task(later(0.1, lambda: routes.put_group(group("Stopping", 0))))
    started = time.monotonic()
    with pytest.raises(NoRoute, match="Stopping"):
        await picker.version(routes.group("grp-a"), None, picker.deadline())
    assert time.monotonic() - started < 1


async def test_a_retry_goes_to_another_replica_or_waits_for_the_failed_one_to_come_back():
    routes = table(replicas=2)
    picker = ReplicaPicker(routes, replica_wait=5)
    first = await picker.replica("svc-a", None, picker.deadline())
    assert await picker.replica("svc-a", first, picker.deadline()) is not first
    routes.set_replicas("svc-a", [first])
    # Still listed: its exit may not be known yet; it gets a short pause, then one more try.
    assert await picker.replica("svc-a", first, picker.deadline()) is first
    routes.set_replicas("svc-a", [])
    restarted = Replica(first.pod_name, first.address)
    asyncio.get_running_loop().create_task(later(0.2, lambda: routes.set_replicas("svc-a", [restarted])))
    assert await picker.replica("svc-a", first, picker.deadline()) is restarted


async def test_retries_go_one_at_a_time_until_the_deadline():
    picker = ReplicaPicker(table(), replica_wait=5)
    order: list[str] = []

    async def retry(name: str, hold: float) -> None:
        async with picker.retrying("svc-a", picker.deadline()):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    await asyncio.gather(retry("a", 0.1), retry("b", 0.0), retry("c", 0.0))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    async with picker.retrying("svc-a", picker.deadline()):
        with pytest.raises(ReplicaConnectionError, match="turn"):
            async with picker.retrying("svc-a", time.monotonic() + 0.1):
                pass
    async with picker.retrying("svc-b", time.monotonic()):  # free lanes need no time
        pass


async def _one_reply_then_hang_up(tmp_path, *, hang_up_at: int):
    """A unix-socket server answering requests with keep-alive, but closing the connection
    without a reply at request number `hang_up_at` (and then no longer listening)."""
    address = str(tmp_path / "replica.sock")
    seen = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)  # the body of these tests' requests: b"{}"
                seen += 1
                if seen == hang_up_at:
                    server.close()
                    writer.close()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_unix_server(serve, path=address)
    return server, address


async def test_a_request_the_replica_read_and_died_with_is_lost_not_just_unsent(tmp_path):
    transport = UnixHttpTransport(timeout=5)
    try:
        with pytest.raises(ReplicaConnectionError) as unsent:
            await transport.send(str(tmp_path / "nobody.sock"), "/predict", b"{}", {})
        assert not isinstance(unsent.value, ReplicaLost)
        server, address = await _one_reply_then_hang_up(tmp_path, hang_up_at=1)
        with pytest.raises(ReplicaLost):
            await transport.send(address, "/predict", b"{}", {})
        # Over a pooled connection too, when no fresh one can be made afterwards.
        (tmp_path / "replica.sock").unlink(missing_ok=True)
        server, address = await _one_reply_then_hang_up(tmp_path, hang_up_at=2)
        assert (await transport.send(address, "/predict", b"{}", {}))[0] == 200
        with pytest.raises(ReplicaLost):
            await transport.send(address, "/predict", b"{}", {})
    finally:
        await transport.aclose()


class ScriptedTransport:
    """Each address fails as scripted ("refuse": never sent, "lose": died with the request) or
    answers 200; every send is recorded."""

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.sent: list[str] = []

    async def send(self, address, path, body, headers):
        self.sent.append(address)
        outcome = self.script.get(address, "answer")
        if outcome == "refuse":
            raise ReplicaConnectionError(f"cannot connect to {address}")
        if outcome == "lose":
            raise ReplicaLost("the replica closed the connection before replying (EOF)")
        return 200, {"content-type": "application/json"}, b'{"predictions": [1]}'

    async def aclose(self) -> None:
        pass


def gateway_over(tmp_path, script: dict[str, str], replicas: int) -> tuple[Gateway, ScriptedTransport]:
    routes = table(replicas=replicas)
    transport = ScriptedTransport(script)
    return Gateway(routes, data_dir=tmp_path, transport=transport, replica_wait=2), transport


async def test_a_retry_moves_past_replicas_that_refuse_the_connection(tmp_path):
    gateway, transport = gateway_over(tmp_path, {"/nowhere/0.sock": "lose", "/nowhere/1.sock": "refuse"}, replicas=3)
    gateway.routes._next_replica["svc-a"] = 0  # idle replicas are taken in turn: 0, then 1, then 2
    reply = await gateway.call(group_id="grp-a", body=b"{}", headers={})
    assert reply.status == 200, reply.body
    assert transport.sent == ["/nowhere/0.sock", "/nowhere/1.sock", "/nowhere/2.sock"]


async def test_a_request_lost_with_two_replicas_is_a_502_and_not_tried_again(tmp_path):
    script = {f"/nowhere/{i}.sock": "lose" for i in range(3)}
    gateway, transport = gateway_over(tmp_path, script, replicas=3)
    reply = await gateway.call(group_id="grp-a", body=b"{}", headers={})
    assert reply.status == 502 and b"may be what makes the model crash" in reply.body
    assert len(transport.sent) == 2
