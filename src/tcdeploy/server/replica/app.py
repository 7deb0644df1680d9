"""The replica's ASGI app: health, version, stats and the scoring routes.

Plain ASGI rather than a framework: six fixed routes, and the per-request cost of routing and
request objects is a visible share of a 1-row prediction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import mlflow
from mlflow.pyfunc import PyFuncModel

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS
from tcdeploy.protocol.chat import CHAT_PATH, why_not_chat
from tcdeploy.server.replica.batching import Batcher, DeadlinePassed
from tcdeploy.server.replica.chat import ChatServer, send_outcome
from tcdeploy.server.replica.inputs import BadRequest, RequestParser, ScoringRequest
from tcdeploy.server.replica.scoring import Outcome, Scorer, error_outcome

_logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Bodies larger than this are parsed in a helper thread so the event loop keeps serving.
_PARSE_OFF_LOOP_BYTES = 1024 * 1024
_JSON_TYPES = (b"application/json", b"")
_CSV_TYPE = b"text/csv"
# A predict running longer than this makes the liveness probe fail (the replica is replaced).
DEFAULT_HANG_AFTER_S = 60.0
# How long a stop waits for batches still in the model before abandoning them.
SHUTDOWN_DRAIN_SECONDS = 10.0

Handler = Callable[[dict, Callable], Awaitable[Outcome]]


class ReplicaApp:
    """Serves one loaded model. Build it with `build_app`."""

    def __init__(
        self,
        model: PyFuncModel,
        *,
        model_uri: str,
        pod_name: str | None,
        max_batch_size: int,
        max_batch_wait_ms: float,
        max_body_bytes: int,
        hang_after_s: float = DEFAULT_HANG_AFTER_S,
    ):
        metadata = model.metadata
        self._hang_after = hang_after_s
        self._parser = RequestParser(
            metadata.get_input_schema(),
            type_hint_signature=metadata._is_signature_from_type_hint(),
            max_batch_rows=max_batch_size,
        )
        self._scorer = Scorer(model, self._parser)
        self._batcher: Batcher[ScoringRequest, Outcome] = Batcher(
            self._scorer.score,
            max_batch_rows=max_batch_size,
            max_wait_s=max_batch_wait_ms / 1000,
        )
        self._max_body_bytes = max_body_bytes
        # A model that can chat also answers the OpenAI chat route (replica/chat.py).
        self._chat = ChatServer(model, name=pod_name or "model") if why_not_chat(metadata.to_dict()) is None else None
        self._in_flight = 0
        self._bad_requests = 0
        self._model_errors = 0
        self._version = _json_bytes(_version_info(model, model_uri, pod_name))
        self._routes: dict[str, tuple[frozenset[str], Handler]] = {
            "/ping": (frozenset({"GET", "HEAD"}), self._ok),
            "/live": (frozenset({"GET", "HEAD"}), self._live),
            "/health": (frozenset({"GET", "HEAD"}), self._ok),
            "/version": (frozenset({"GET"}), self._version_handler),
            "/stats": (frozenset({"GET"}), self._stats_handler),
            "/predict": (frozenset({"POST"}), self._predict),
            "/invocations": (frozenset({"POST"}), self._predict),
        }

    def stats(self) -> dict[str, Any]:
        """Counters since start: see the module docs of `tcdeploy.server.replica`."""
        return {
            **self._batcher.stats.as_dict(),
            "batches_retried_alone": self._scorer.batches_retried_alone,
            "in_flight": self._in_flight,
            "bad_requests": self._bad_requests,
            "model_errors": self._model_errors,
            **(self._chat.stats() if self._chat else {}),
        }

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        request_id = _header(scope, b"x-request-id")
        if self._chat is not None and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await self._serve_chat(scope, receive, send)
            return
        route = self._routes.get(scope["path"])
        if route is None:
            outcome = error_outcome(404, "NOT_FOUND", f"no route {scope['path']!r}")
        elif scope["method"] not in route[0]:
            outcome = error_outcome(405, "METHOD_NOT_ALLOWED", f"{scope['path']} takes {', '.join(sorted(route[0]))}")
        else:
            try:
                outcome = await route[1](scope, receive)
            except Exception:
                _logger.exception("unexpected error serving %s", scope["path"])
                outcome = error_outcome(500, "INTERNAL_ERROR", "unexpected error: see the replica log")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(outcome.body)).encode()),
        ]
        if request_id is not None:
            headers.append((b"x-request-id", request_id))
        if outcome.batch_rows:
            headers.append((b"x-batch-rows", str(outcome.batch_rows).encode()))
        if outcome.warning:
            headers.append((b"warning", outcome.warning.encode("ascii", "backslashreplace")))
        await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else outcome.body
        await send({"type": "http.response.body", "body": body})

    async def _serve_chat(self, scope: dict, receive: Callable, send: Callable) -> None:
        self._in_flight += 1
        try:
            try:
                body = await self._read_body(scope, receive)
            except BadRequest as exc:
                await send_outcome(send, error_outcome(400, "BAD_REQUEST", str(exc)), _header(scope, b"x-request-id"))
                return
            await self._chat.serve(scope, receive, send, body)  # type: ignore[union-attr]
        finally:
            self._in_flight -= 1

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Uvicorn has finished (or given up on) every in-flight request by now.
                await self._batcher.stop(timeout_s=SHUTDOWN_DRAIN_SECONDS)
                if self._chat is not None:
                    self._chat.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ok(self, scope: dict, receive: Callable) -> Outcome:
        return Outcome(200, b'{"status": "ok"}')

    async def _live(self, scope: dict, receive: Callable) -> Outcome:
        """The liveness probe: the event loop answers, and no predict has been running past
        `hang_after_s` (a deadlock or an endless loop in the model would hold every request
        queued behind it; the supervisor replaces a replica that fails this)."""
        since = self._batcher.busy_since
        running = 0.0 if since is None else time.monotonic() - since
        if running > self._hang_after:
            message = f"a predict has been running for {running:.0f} s (a replica's limit is {self._hang_after:g} s)"
            return error_outcome(503, "HUNG", message)
        return Outcome(200, b'{"status": "ok"}')

    async def _version_handler(self, scope: dict, receive: Callable) -> Outcome:
        return Outcome(200, self._version)

    async def _stats_handler(self, scope: dict, receive: Callable) -> Outcome:
        return Outcome(200, _json_bytes(self.stats()))

    async def _predict(self, scope: dict, receive: Callable) -> Outcome:
        self._in_flight += 1
        try:
            outcome = await self._score(scope, receive)
        finally:
            self._in_flight -= 1
        if outcome.status == 400:
            self._bad_requests += 1
        elif outcome.status == 500:
            self._model_errors += 1
        return outcome

    async def _score(self, scope: dict, receive: Callable) -> Outcome:
        content_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type in _JSON_TYPES:
            parse = self._parser.parse_json
        elif content_type == _CSV_TYPE:
            parse = self._parser.parse_csv
        else:
            return error_outcome(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"content type {content_type.decode(errors='replace')!r} is not supported: "
                "send application/json (or text/csv)",
            )
        try:
            body = await self._read_body(scope, receive)
            chat = await self._chat.predict(body) if self._chat is not None else None
            if chat is not None:
                return chat
            if len(body) > _PARSE_OFF_LOOP_BYTES:
                request = await asyncio.to_thread(parse, body)
            else:
                request = parse(body)
        except BadRequest as exc:
            return error_outcome(400, "BAD_REQUEST", str(exc))
        try:
            outcome = await self._batcher.submit(
                request, rows=request.rows, key=request.batch_key, deadline=_deadline(scope)
            )
            return _with_dropped_columns(outcome, request.dropped)
        except DeadlinePassed:
            return error_outcome(
                504,
                "DEADLINE_EXCEEDED",
                "the request waited past its deadline and was not scored (the replica is busy)",
            )

    async def _read_body(self, scope: dict, receive: Callable) -> bytes:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body_bytes:
            raise BadRequest(self._too_large())
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                raise BadRequest(self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body is larger than the limit of {self._max_body_bytes} bytes"


def _with_dropped_columns(outcome: Outcome, dropped: tuple) -> Outcome:
    """A scored reply names the columns the model left out, in a `Warning` header (299: a
    persistent warning), as a client of MLflow's serving would only learn from its log."""
    if not dropped or outcome.status >= 400:
        return outcome
    names = ", ".join(repr(str(name)) for name in dropped[:20])
    return replace(outcome, warning=f'299 tcdeploy "column(s) {names} are not in the model\'s signature: dropped"')


def build_app(
    model: PyFuncModel,
    *,
    model_uri: str = "",
    pod_name: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_ROWS,
    max_batch_wait_ms: float = 2.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    hang_after_s: float = DEFAULT_HANG_AFTER_S,
) -> ReplicaApp:
    """The ASGI app serving `model`; run it with uvicorn (lifespan on, so shutdown drains)."""
    return ReplicaApp(
        model,
        model_uri=model_uri,
        pod_name=pod_name,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        max_body_bytes=max_body_bytes,
        hang_after_s=hang_after_s,
    )


def _deadline(scope: dict) -> float | None:
    """The monotonic time by which the caller stops waiting, from `x-request-deadline-ms`
    (milliseconds left when the gateway sent it)."""
    left = _header(scope, b"x-request-deadline-ms")
    if left is None or not left.isdigit():
        return None
    return time.monotonic() + int(left) / 1000


def _version_info(model: PyFuncModel, model_uri: str, pod_name: str | None) -> dict[str, Any]:
    metadata = model.metadata
    schema = metadata.get_input_schema()
    return {
        "mlflow_version": mlflow.__version__,
        "model_uri": model_uri,
        "pod_name": pod_name,
        "flavors": sorted(metadata.flavors),
        "loader_module": metadata.flavors.get("python_function", {}).get("loader_module"),
        "signature": None if schema is None else str(schema),
    }


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()
