"""A steady load of concurrent `/predict` calls, run in a background thread, and what each one got.

Tests drive the control plane with blocking SDK calls while the load runs; the load has its own
thread and event loop so neither waits for the other.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Call:
    """One request of the load: when it ran (monotonic seconds) and what came back."""

    request_id: str
    started: float
    ended: float
    status: int | None  # None: no HTTP reply at all (connection refused or reset, timeout)
    detail: str  # for anything but a 200: the reply's message or the exception
    answers: tuple | None  # the predictions of a 200

    @property
    def ok(self) -> bool:
        return self.status == 200


class Load:
    """`workers` clients, each sending one request after the other until `stop()`.

    `body` is the request body, or a function of the call's number that returns it. Every call
    carries its own `X-Request-Id`, so it can be found in the inference table.
    """

    def __init__(
        self,
        url: str,
        body: bytes | Callable[[int], bytes],
        *,
        workers: int = 4,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        pause: float = 0.01,
    ) -> None:
        self.url = url
        self._body = body if callable(body) else (lambda _n: body)
        self.workers = workers
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = timeout
        self.pause = pause
        self._calls: list[Call] = []
        self._sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._main, name="resilience-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Call]:
        """Stop sending; wait for the calls in flight; return every call, oldest first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 10)
            self._thread = None
        if self._crash is not None:
            raise RuntimeError("the load driver failed") from self._crash
        return self.calls

    @property
    def calls(self) -> list[Call]:
        return sorted(list(self._calls), key=lambda call: call.started)

    def wait_for_calls(self, count: int, timeout: float = 60.0) -> None:
        """Return once `count` more calls have finished (so traffic really flows meanwhile)."""
        target = len(self._calls) + count
        deadline = time.monotonic() + timeout
        while len(self._calls) < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"the load finished {len(self._calls)} calls, not {target}, in {timeout:g} s")
            time.sleep(0.02)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop(), in the test's thread
            self._crash = exc

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(self.workers)))

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            number, self._sent = self._sent, self._sent + 1
            self._calls.append(await self._one(client, self._body(number)))
            if self.pause:
                await asyncio.sleep(self.pause)

    async def _one(self, client: httpx.AsyncClient, body: bytes) -> Call:
        request_id = uuid.uuid4().hex
        started = time.monotonic()
        try:
            reply = await client.post(self.url, content=body, headers={**self.headers, "X-Request-Id": request_id})
        except httpx.HTTPError as exc:
            return Call(request_id, started, time.monotonic(), None, f"{type(exc).__name__}: {exc}", None)
        ended = time.monotonic()
        try:
            document = reply.json()
        except ValueError:
            document = None
        if reply.status_code == 200 and isinstance(document, dict):
            return Call(request_id, started, ended, 200, "", tuple(document.get("predictions") or ()))
        message = document.get("message") if isinstance(document, dict) else None
        return Call(request_id, started, ended, reply.status_code, message or reply.text[:300], None)


def failed(calls: Iterable[Call]) -> list[Call]:
    return [call for call in calls if not call.ok]


def during(calls: Iterable[Call], start: float, end: float = float("inf")) -> list[Call]:
    """The calls that began at or after `start` and ended by `end` (monotonic seconds)."""
    return [call for call in calls if call.started >= start and call.ended <= end]


def answers_seen(calls: Iterable[Call]) -> set:
    """Every prediction value the successful calls got back."""
    return {value for call in calls if call.ok for value in call.answers}


def describe(calls: Iterable[Call], limit: int = 8) -> str:
    """A short account of failed calls, for assertion messages."""
    bad = failed(calls)
    shown = "; ".join(f"{call.status}: {call.detail[:160]}" for call in bad[:limit])
    return f"{len(bad)} failed: {shown}" if bad else "none failed"
