"""A chat stream's hop from replica to client: a `ReplicaTransport` for one request that relays
the replica's server-sent events to the client as they come, never holding the whole reply.

The data plane does the rest as for any request (auth, weights, limits, picking and the retry of
a replica that cannot be reached, metrics, the inference table): it sees an exchange that
returns (status, headers, body) once the stream is over, the body being the whole reply put back
together (OpenAI's `chat.completion` with the concatenated text and the usage), which is what the
inference table records. `x-ttft-ms` and `x-completion-tokens` in those headers feed the chat
metrics.

A client that goes away ends the relay at once: the replica's connection is closed, which the
replica takes as the client's disconnect and stops the model; the request is recorded with
status 499 (nginx's "client closed request") and the reply as far as it went.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any

import httpx

from tcdeploy.protocol.chat import count_tokens

from .transport import ReplicaConnectionError, ReplicaReplyError, ReplicaTimeout

CLIENT_CLOSED = 499
# A stream may pause between tokens; this long without a byte from the replica ends it.
READ_TIMEOUT = 300.0
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

Send = Callable[[dict], Awaitable[None]]


class SseRelay:
    """Relays one streamed chat reply from a replica to the ASGI `send` of its client."""

    def __init__(self, send: Send, client_gone: asyncio.Event, request_id: str) -> None:
        self._send = send
        self._gone = client_gone
        self._request_id = request_id
        self.started = False  # the client's reply has begun: no other reply can be sent now
        self._reply = _Reassembly()

    async def send(
        self, address: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        began = time.perf_counter()
        # httpx builds a TLS context (loading CA certificates: ~7 ms) per client unless given one;
        # a unix socket never uses it, so every stream shares one.
        tls = _unused_tls()
        transport = httpx.AsyncHTTPTransport(uds=address, verify=tls)
        timeout = httpx.Timeout(READ_TIMEOUT, connect=10.0)
        async with httpx.AsyncClient(transport=transport, timeout=timeout, verify=tls) as client:
            try:
                request = client.build_request("POST", f"http://replica{path}", content=body, headers=dict(headers))
                response = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                raise ReplicaConnectionError(f"cannot stream from {address}: {exc}") from None
            except httpx.TimeoutException as exc:
                raise ReplicaTimeout(f"the replica did not answer: {exc}") from None
            try:
                return await self._answer(response, began)
            finally:
                await response.aclose()

    async def aclose(self) -> None:
        pass

    async def _answer(self, response: httpx.Response, began: float) -> tuple[int, dict[str, str], bytes]:
        headers = {name.lower(): value for name, value in response.headers.items()}
        if response.status_code != 200 or not headers.get("content-type", "").startswith("text/event-stream"):
            # A refusal (bad body, model error) is a whole reply: the data plane sends it.
            return response.status_code, headers, await response.aread()
        await self._start()
        relaying = asyncio.ensure_future(self._relay(response))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({relaying, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        status = 200
        if not relaying.done():
            relaying.cancel()
            status = CLIENT_CLOSED
        elif relaying.exception() is not None:
            raise _as_replica_error(relaying.exception())
        elif relaying.result() is False:
            status = CLIENT_CLOSED
        return status, self._reply.headers(began), self._reply.body()

    async def _start(self) -> None:
        headers = [*SSE_HEADERS, (b"x-request-id", self._request_id.encode("latin-1"))]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True

    async def _relay(self, response: httpx.Response) -> bool:
        """Pass each event on as it comes; False if the client went meanwhile."""
        async for event in _events(response):
            self._reply.add(event)
            try:
                await self._send({"type": "http.response.body", "body": event, "more_body": True})
            except OSError:  # the client's connection closed under us
                return False
        return True


@cache
def _unused_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _events(response: httpx.Response):
    """The server-sent events of a reply, one `data: …\\n\\n` block at a time."""
    pending = b""
    async for piece in response.aiter_raw():
        pending += piece
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            yield event + b"\n\n"
    if pending.strip():
        yield pending + b"\n\n"


def _as_replica_error(exc: BaseException) -> Exception:
    if isinstance(exc, httpx.TimeoutException):
        return ReplicaTimeout(f"the replica stopped streaming: {exc}")
    return ReplicaReplyError(f"the replica's stream broke off: {exc}")


class _Reassembly:
    """The streamed reply put back together: OpenAI's `chat.completion`, for the inference table."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._base: dict[str, Any] = {}
        self._text: list[str] = []
        self._finish: str | None = None
        self._usage: dict | None = None
        self._error: Any = None

    def add(self, event: bytes) -> None:
        if self._first is None:
            self._first = time.perf_counter()
        data = event.strip().removeprefix(b"data:").strip()
        if data == b"[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        if not isinstance(chunk, dict):
            return
        if "error" in chunk:
            self._error = chunk["error"]
        self._base = self._base or {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            self._finish = choice.get("finish_reason") or self._finish
        self._usage = chunk.get("usage") or self._usage

    def headers(self, started: float) -> dict[str, str]:
        ttft = ((self._first or time.perf_counter()) - started) * 1000.0
        tokens = (self._usage or {}).get("completion_tokens")
        if not isinstance(tokens, int):
            tokens = count_tokens("".join(self._text))
        return {"content-type": "text/event-stream", "x-ttft-ms": f"{ttft:.3f}", "x-completion-tokens": str(tokens)}

    def body(self) -> bytes:
        message = {"role": "assistant", "content": "".join(self._text)}
        reply: dict[str, Any] = {
            **self._base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish}],
            "usage": self._usage,
        }
        if self._error is not None:
            reply["error"] = self._error
        return json.dumps(reply).encode()
