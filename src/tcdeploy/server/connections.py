"""How the server takes connections: uvicorn with bounds a public endpoint needs.

- A request must arrive whole, headers and body, within `read_timeout` of its first byte (or of
  the connection's opening): a client that trickles it (slowloris) gets a 408 and is closed,
  instead of holding a connection and its buffers for as long as it likes.
- At most `max_connections` connections and requests at once; past them uvicorn answers 503 at
  once (its `limit_concurrency`).
- Idle keep-alive connections close after `KEEP_ALIVE` seconds; headers are bounded by the HTTP
  parser (llhttp: 80 KiB in all), a larger head is answered 400.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

KEEP_ALIVE = 5.0
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_TIMED_OUT_BODY = b'{"error_code": "REQUEST_TIMEOUT", "message": "the request did not arrive in time"}'


class BoundedReadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for reading each request."""

    read_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer: asyncio.TimerHandle | None = None
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._read_timer = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            return  # answering already (it refused the body early, say): let it finish
        # Nothing of a reply to this request is out (a finished one is the previous request's).
        self.transport.write(_TIMED_OUT % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY))
        self.transport.close()


def serving_config(app: Any, *, host: str, port: int, max_connections: int, read_timeout: float) -> uvicorn.Config:
    """The uvicorn config `tcdeploy server` serves with."""
    protocol = type("BoundedRead", (BoundedReadProtocol,), {"read_timeout": read_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
