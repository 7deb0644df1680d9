"""The one narrow seam between the gateway and its replicas: send a POST to a unix socket (or, for
a replica on another machine, a TCP address) and get (status, headers, body) back.

`UnixHttpTransport` is a minimal keep-alive HTTP/1.1 client: an asyncio protocol per connection
that feeds httptools' response parser, one pool of idle connections per replica address. It does
only what the gateway needs (POST with a body, a Content-Length or chunked reply) and, measured
against httpx over the same socket, costs a fraction of the CPU per request — the gateway's hop
is on every prediction's path.

A replica address is a unix socket path, or `tcp://HOST:PORT/POD` for a replica elsewhere (the Ray
runtime). A TCP port is reachable by the cluster network, so every request there carries the pod's
token (`replica_token(pod)`, which the replica checks); connecting gives up after a short timeout
(a node that is gone should cost a retry elsewhere, not the request's whole deadline), and
connections have TCP keep-alive and TCP_NODELAY.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Protocol

import httptools

from tcdeploy.protocol.replica_hop import TCP_PREFIX, TOKEN_HEADER, split_tcp_address

# Replicas keep idle connections 75 s (uvicorn's default is 5 s); one idle longer than this is
# dropped rather than reused, so a reuse rarely races with the server closing it. If it does,
# send() tries once more on a fresh connection.
IDLE_TTL = 30.0
MAX_IDLE_PER_ADDRESS = 256
TCP_CONNECT_TIMEOUT = 1.0


class ReplicaConnectionError(Exception):
    """The replica could not be reached, or closed the connection before any reply: the request
    can be retried elsewhere."""


class ReplicaLost(ReplicaConnectionError):
    """The connection closed after the request was sent and before any reply: the replica may
    have read the request and died of it. Still worth one retry elsewhere (a replica killed under
    load); lost twice, the request itself is likely what kills the model."""


class ReplicaReplyError(Exception):
    """The replica started a reply and broke off, or answered something that is not HTTP: not
    retried, since the replica may have acted on the request."""


class ReplicaTimeout(Exception):
    """The replica did not answer in time."""


class ReplicaTransport(Protocol):
    async def send(
        self, address: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """POST `body` to `path` on the replica at `address`; return (status, headers with
        lower-case names, body). Raises ReplicaConnectionError if nothing came back (ReplicaLost
        when the request was sent before the connection went)."""
        ...

    async def aclose(self) -> None: ...


# The transport that carries the current request when it is not the gateway's own: a chat
# stream's relay (gateway/streaming.py), set by the chat route for its request's task only.
REQUEST_TRANSPORT: ContextVar[ReplicaTransport | None] = ContextVar("REQUEST_TRANSPORT", default=None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a replica; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._keep_alive = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ReplicaReplyError("the replica asked to upgrade the connection"))
        except httptools.HttpParserError as exc:
            self._fail(ReplicaReplyError(f"the replica's reply is not valid HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._started:
            self._fail(ReplicaReplyError("the replica closed the connection in the middle of a reply"))
        else:
            reason = f"the replica closed the connection before replying ({exc or 'EOF'})"
            self._fail(ReplicaLost(reason))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful inside a callback
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result((self._parser.get_status_code(), self._headers, body))

    # -- used by the transport
    def request(self, head: bytes, body: bytes, timeout: float) -> asyncio.Future:
        """Send one request; the future gets (status, headers, body) or a Replica* error."""
        if self.transport is None or self.transport.is_closing():
            # The replica went (its socket closed) before we learnt of it: nothing was sent.
            self.closed = True
            raise ReplicaConnectionError("the connection to the replica was closed before the request was sent")
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        # A timer handle per request is cheaper than asyncio.wait_for's wrapping future.
        self._timer = loop.call_later(timeout, self._timed_out, timeout)
        self._started = False
        self._keep_alive = False
        self._headers = {}
        self._body = []
        try:
            self.transport.writelines((head, body))  # type: ignore[union-attr]
        except RuntimeError as closed:  # closed under us between the check and the write
            self._cancel_timer()
            self._waiter = None
            self.closed = True
            raise ReplicaConnectionError(f"the connection to the replica closed: {closed}") from None
        return self._waiter

    def reusable(self) -> bool:
        return not self.closed and self._keep_alive

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(ReplicaTimeout(f"the replica did not answer within {timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: Exception) -> None:
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()


class UnixHttpTransport:
    """HTTP/1.1 over unix sockets (and TCP) with a pool of keep-alive connections per address.

    `replica_token(pod_name)` gives the token a TCP replica checks; without it, TCP addresses are
    refused."""

    def __init__(self, *, timeout: float = 300.0, replica_token: Callable[[str], str] | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be above 0 seconds, got {timeout}")
        self.timeout = timeout
        self._replica_token = replica_token
        self._deadline_ms = str(int(timeout * 1000))
        self._idle: dict[str, list[_Connection]] = {}

    async def send(
        self, address: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        # The version's own deadline when the gateway gives one, else the transport's; the replica
        # drops the request unscored if it is still queued when it has passed.
        deadline_ms = headers.get("x-request-deadline-ms")
        timeout = int(deadline_ms) / 1000 if deadline_ms else self.timeout
        headers = {**headers, "x-request-deadline-ms": deadline_ms or self._deadline_ms}
        if address.startswith(TCP_PREFIX):
            headers[TOKEN_HEADER] = self._token_for(address)
        head = _request_head(path, body, headers)
        conn = self._pooled(address)
        if conn is None:
            return await self._exchange(address, await self._connect(address), head, body, timeout)
        try:
            return await self._exchange(address, conn, head, body, timeout)
        except ReplicaConnectionError as lost:
            # A pooled connection the replica closed meanwhile (idle timeout, restart): try once
            # on a fresh one before reporting the replica unreachable. If no fresh connection can
            # be made, the replica died: say it was lost with the request, which it may have read.
            try:
                fresh = await self._connect(address)
            except ReplicaConnectionError:
                raise lost from None
        return await self._exchange(address, fresh, head, body, timeout)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn in connections:
                conn.close()

    async def _exchange(self, address: str, conn: _Connection, head: bytes, body: bytes, timeout: float):
        try:
            reply = await conn.request(head, body, timeout)
        except BaseException:
            conn.close()  # the connection's state is unknown (cancelled, failed): never reuse it
            raise
        if conn.reusable():
            self._release(address, conn)
        else:
            conn.close()
        return reply

    def _pooled(self, address: str) -> _Connection | None:
        idle = self._idle.get(address)
        if not idle:
            return None
        oldest_usable = time.monotonic() - IDLE_TTL
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest_usable:
                return conn
            conn.close()
        return None

    def _release(self, address: str, conn: _Connection) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) >= MAX_IDLE_PER_ADDRESS:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def _token_for(self, address: str) -> str:
        if self._replica_token is None:
            raise ReplicaConnectionError(f"{address}: this gateway has no replica tokens for TCP replicas")
        return self._replica_token(_split_tcp(address)[2])

    async def _connect(self, address: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if address.startswith(TCP_PREFIX):
                host, port, _ = _split_tcp(address)
                connecting, timeout = loop.create_connection(_Connection, host, port), TCP_CONNECT_TIMEOUT
            else:
                connecting, timeout = loop.create_unix_connection(_Connection, path=address), self.timeout
            transport, conn = await asyncio.wait_for(connecting, timeout)
        except asyncio.TimeoutError:
            raise ReplicaConnectionError(f"connecting to {address} timed out") from None
        except OSError as exc:
            raise ReplicaConnectionError(f"cannot connect to {address}: {exc}") from exc
        if address.startswith(TCP_PREFIX):
            _tune_tcp(transport)
        return conn


def _split_tcp(address: str) -> tuple[str, int, str]:
    try:
        return split_tcp_address(address)
    except ValueError as exc:
        raise ReplicaConnectionError(str(exc)) from None


def _tune_tcp(transport: asyncio.BaseTransport) -> None:
    """Small requests go out at once (no Nagle delay); a peer that vanished is noticed."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _request_head(path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1\r\nHost: replica\r\nContent-Length: {len(body)}\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    _refuse_line_breaks(path, headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _refuse_line_breaks(path: str, headers: Mapping[str, str]) -> None:
    # A CR or LF would let a value smuggle in headers (or a second request) of its own.
    for text in (path, *headers.keys(), *headers.values()):
        if "\r" in text or "\n" in text:
            raise ValueError(f"CR or LF in the request path or a header: {text[:80]!r}")
