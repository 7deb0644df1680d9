"""The one narrow seam between the gateway and its replicas: send a POST to a unix socket and get
(status, headers, body) back.

`UnixHttpTransport` is a minimal keep-alive HTTP/1.1 client: an asyncio protocol per connection
that feeds httptools' response parser, one pool of idle connections per replica address. It does
only what the gateway needs (POST with a body, a Content-Length or chunked reply) and, measured
against httpx over the same socket, costs a fraction of the CPU per request — the gateway's hop
is on every prediction's path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Protocol

import httptools

# Replicas keep idle connections 75 s (uvicorn's default is 5 s); one idle longer than this is
# dropped rather than reused, so a reuse rarely races with the server closing it. If it does,
# send() tries once more on a fresh connection.
IDLE_TTL = 30.0
MAX_IDLE_PER_ADDRESS = 256


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
    """HTTP/1.1 over unix sockets with a pool of keep-alive connections per address."""

    def __init__(self, *, timeout: float = 300.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be above 0 seconds, got {timeout}")
        self.timeout = timeout
        self._deadline_ms = str(int(timeout * 1000))
        self._idle: dict[str, list[_Connection]] = {}

    async def send(
        self, address: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        # The version's own deadline when the gateway gives one, else the transport's; the replica
        # drops the request unscored if it is still queued when it has passed.
        deadline_ms = headers.get("x-request-deadline-ms")
        timeout = int(deadline_ms) / 1000 if deadline_ms else self.timeout
        head = _request_head(path, body, {**headers, "x-request-deadline-ms": deadline_ms or self._deadline_ms})
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

    async def _connect(self, address: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_unix_connection(_Connection, path=address), self.timeout)
        except asyncio.TimeoutError:
            raise ReplicaConnectionError(f"connecting to {address} timed out") from None
        except OSError as exc:
            raise ReplicaConnectionError(f"cannot connect to {address}: {exc}") from exc
        return conn


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
