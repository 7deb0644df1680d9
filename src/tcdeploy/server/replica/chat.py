"""The replica's chat routes: OpenAI's `/v1/chat/completions` over the model's `predict` and
`predict_stream`, and `/predict` in MLflow's chat form (`{"messages": …}`, answered unwrapped as
MLflow's scoring server answers LLM input).

Generation runs in a thread pool of its own, bounded by the replica's size (threads per core of
its instance type): a stream holds a thread for its whole length, and the event loop only moves
chunks, so many streams are served at once without blocking it. A client that disconnects stops
the generation: the pumping thread closes the model's generator at its next chunk, which raises
GeneratorExit inside the model's `predict_stream`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from tcdeploy.protocol.chat import MODEL_PARAMS, ChatBodyError, count_tokens, parse_chat, prompt_tokens, text_of
from tcdeploy.server.replica.scoring import Outcome, error_outcome

_logger = logging.getLogger(__name__)

THREADS_PER_CORE = 4
MIN_THREADS = 4
# Requests a replica takes per generation thread (one generating, one waiting for a thread);
# beyond, a fast 503 rather than an ever longer queue.
REQUESTS_PER_THREAD = 2
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
DONE = b"data: [DONE]\n\n"
# What the pumping thread hands the event loop.
_CHUNK, _ERROR, _END = "chunk", "error", "end"


def chat_threads() -> int:
    """Generation threads: THREADS_PER_CORE per core of the instance type (the runtime sets
    OMP_NUM_THREADS to its cores), at least MIN_THREADS."""
    cores = os.environ.get("OMP_NUM_THREADS", "")
    return max(MIN_THREADS, THREADS_PER_CORE * (int(cores) if cores.isdigit() else 1))


class ChatServer:
    """Chat for one loaded model that can chat."""

    def __init__(self, model: PyFuncModel, *, name: str, threads: int | None = None) -> None:
        self._model = model
        self._name = name
        self._params = _params_taken(model)
        threads = threads or chat_threads()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chat")
        self._capacity = threads * REQUESTS_PER_THREAD
        self._active = 0
        self.streams = 0
        self.cancelled = 0
        self.overloaded = 0

    def stats(self) -> dict[str, int]:
        return {"chat_streams": self.streams, "chat_cancelled": self.cancelled, "chat_overloaded": self.overloaded}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def predict(self, body: bytes) -> Outcome | None:
        """`/predict` for a chat model: the MLflow chat form answered unwrapped; None when the body
        is not in that form (the tabular path takes it)."""
        if b'"messages"' not in body:
            return None
        try:
            request = parse_chat(body)
        except ChatBodyError as exc:
            return error_outcome(400, "BAD_REQUEST", str(exc))
        if request.get("stream"):
            return error_outcome(400, "BAD_REQUEST", "stream: /predict answers whole; stream at /v1/chat/completions")
        with self._admitted() as refusal:
            return refusal or await self._complete(request)

    async def serve(self, scope: dict, receive: Callable, send: Callable, body: bytes) -> None:
        """POST /v1/chat/completions: a completion, or with `stream` server-sent events."""
        request_id = _request_id(scope)
        try:
            request = parse_chat(body)
        except ChatBodyError as exc:
            await send_outcome(send, error_outcome(400, "BAD_REQUEST", str(exc)), request_id)
            return
        with self._admitted() as refusal:
            if refusal is not None:
                await send_outcome(send, refusal, request_id)
            elif not request.get("stream"):
                await send_outcome(send, await self._complete(request), request_id)
            else:
                await self._stream(request, receive, send, request_id)

    @contextmanager
    def _admitted(self) -> Iterator[Outcome | None]:
        """None while the replica has room for one more chat request, else the 503 to answer."""
        if self._active >= self._capacity:
            self.overloaded += 1
            yield error_outcome(
                503,
                "TEMPORARILY_UNAVAILABLE",
                f"the replica is answering {self._active} chat requests, its most; retry",
            )
            return
        self._active += 1
        try:
            yield None
        finally:
            self._active -= 1

    # ---- whole replies -------------------------------------------------------------------------

    async def _complete(self, request: dict[str, Any]) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, self._model.predict, model_input(request, self._params))
        except Exception as exc:
            return _model_failure(exc)
        reply = completion(result, request, self._name)
        # Reported to the gateway (its tokens/s metric) as batch sizes are, in a header.
        return Outcome(200, json.dumps(reply).encode(), completion_tokens=reply["usage"].get("completion_tokens", 0))

    # ---- streams ----------------------------------------------------------------------------

    async def _stream(self, request: dict[str, Any], receive: Callable, send: Callable, request_id: bytes | None):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, stop))
        self.streams += 1
        pumping = loop.run_in_executor(
            self._pool, _pump, self._model, model_input(request, self._params), loop, queue, stop
        )
        try:
            kind, item = await queue.get()
            if kind == _ERROR:
                # Nothing sent yet: the failure is the reply's status (bad input is a 400).
                await send_outcome(send, _model_failure(item), request_id)
                return
            headers = SSE_HEADERS + ([(b"x-request-id", request_id)] if request_id else [])
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._send_events(request, kind, item, queue, send, stop)
        finally:
            stop.set()
            watcher.cancel()
            if stop.is_set() and not pumping.done():
                await asyncio.shield(pumping)  # the thread closes the generator; wait for it

    async def _send_events(self, request, kind, item, queue: asyncio.Queue, send: Callable, stop: threading.Event):
        framer = ChunkFramer(request, self._name)
        while kind == _CHUNK:
            if stop.is_set():
                self.cancelled += 1
                return
            await send({"type": "http.response.body", "body": framer.event(item), "more_body": True})
            kind, item = await queue.get()
        if kind == _ERROR:
            message = _model_failure(item).body.decode()
            await send(
                {"type": "http.response.body", "body": b"data: %s\n\n" % _error_event(message), "more_body": True}
            )
        else:
            await send({"type": "http.response.body", "body": framer.last(), "more_body": True})
        await send({"type": "http.response.body", "body": DONE})


def _pump(model: PyFuncModel, data: dict, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stop: threading.Event):
    """In a pool thread: run the model's stream, handing each chunk to the loop; once `stop` is
    set, close the generator (the model sees GeneratorExit) rather than ask for more."""
    chunks: Iterator | None = None
    try:
        chunks = model.predict_stream(data)
        for chunk in chunks:
            if stop.is_set():
                break
            loop.call_soon_threadsafe(queue.put_nowait, (_CHUNK, chunk))
    except Exception as exc:
        loop.call_soon_threadsafe(queue.put_nowait, (_ERROR, exc))
    finally:
        if chunks is not None and hasattr(chunks, "close"):
            chunks.close()
        loop.call_soon_threadsafe(queue.put_nowait, (_END, None))


async def _watch_disconnect(receive: Callable, stop: threading.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stop.set()
            return


def model_input(request: dict[str, Any], params: tuple[str, ...] = MODEL_PARAMS) -> dict[str, Any]:
    """What a chat model's `predict`/`predict_stream` takes: the messages (text content) and the
    chat parameters among `params` (those its signature has: a ChatAgent takes none)."""
    messages = [{"role": m["role"], "content": text_of(m.get("content"))} for m in request["messages"]]
    data: dict[str, Any] = {"messages": messages}
    for name in params:
        if request.get(name) is not None:
            data[name] = request[name]
    if isinstance(data.get("stop"), str):
        data["stop"] = [data["stop"]]
    return data


def _params_taken(model: PyFuncModel) -> tuple[str, ...]:
    """The chat parameters the model's signature takes (all of them when it has none)."""
    schema = getattr(getattr(model, "metadata", None), "get_input_schema", lambda: None)()
    if schema is None or not schema.has_input_names():
        return MODEL_PARAMS
    names = set(schema.input_names())
    return tuple(name for name in MODEL_PARAMS if name in names)


def completion(result: Any, request: dict[str, Any], name: str) -> dict[str, Any]:
    """The model's reply in OpenAI's shape, members it left out filled in (usage in words)."""
    reply = dict(result) if isinstance(result, dict) else {}
    if "choices" not in reply and isinstance(reply.get("messages"), list) and reply["messages"]:
        # A ChatAgent's reply: the messages it adds; the last one is the answer.
        last = reply["messages"][-1]
        reply["choices"] = [{"index": 0, "message": {"role": "assistant", "content": last.get("content")}}]
    if "choices" not in reply:
        text = result if isinstance(result, str) else json.dumps(result)
        reply["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text}}]
    choices = []
    for i, choice in enumerate(reply["choices"]):
        message = dict(choice.get("message") or {})
        message.setdefault("role", "assistant")
        message["content"] = text_of(message.get("content"))
        choices.append(
            {
                "index": choice.get("index", i),
                "message": message,
                "finish_reason": choice.get("finish_reason") or "stop",
            }
        )
    completion_tokens = sum(count_tokens(c["message"]["content"]) for c in choices)
    return {
        "id": reply.get("id") or _completion_id(),
        "object": "chat.completion",
        "created": int(reply.get("created") or time.time()),
        "model": reply.get("model") or request.get("model") or name,
        "choices": choices,
        "usage": reply.get("usage") or usage(prompt_tokens(request["messages"]), completion_tokens),
    }


class ChunkFramer:
    """Turns the model's chunks into OpenAI `chat.completion.chunk` events of one id, counting the
    words they carry for the last event's `usage`."""

    def __init__(self, request: dict[str, Any], name: str) -> None:
        self._base = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.get("model") or name,
        }
        self._prompt_tokens = prompt_tokens(request["messages"])
        self._text: list[str] = []
        self._finish: str | None = None

    def event(self, chunk: Any) -> bytes:
        choices = []
        for i, choice in enumerate(_chunk_choices(chunk)):
            delta = dict(choice.get("delta") or {})
            if delta.get("content") is not None:
                delta["content"] = text_of(delta["content"])
                self._text.append(delta["content"])
            self._finish = choice.get("finish_reason") or self._finish
            choices.append({"index": choice.get("index", i), "delta": delta, "finish_reason": None})
        return _data({**self._base, "choices": choices})

    def last(self) -> bytes:
        """The closing event: the finish reason and the usage of the whole reply."""
        completion_tokens = count_tokens("".join(self._text))
        choice = {"index": 0, "delta": {}, "finish_reason": self._finish or "stop"}
        return _data({**self._base, "choices": [choice], "usage": usage(self._prompt_tokens, completion_tokens)})


def _chunk_choices(chunk: Any) -> list[dict]:
    if isinstance(chunk, dict) and isinstance(chunk.get("choices"), list):
        return [c for c in chunk["choices"] if isinstance(c, dict)]
    if isinstance(chunk, dict) and isinstance(chunk.get("delta"), dict):  # a ChatAgent's chunk
        return [{"index": 0, "delta": {"role": "assistant", "content": chunk["delta"].get("content")}}]
    text = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return [{"index": 0, "delta": {"content": text}}]


def usage(prompt: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def _data(event: dict) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _error_event(message_json: str) -> bytes:
    error = json.loads(message_json)
    return json.dumps({"error": {"message": error.get("message"), "type": error.get("error_code")}}).encode()


def _model_failure(exc: BaseException) -> Outcome:
    if isinstance(exc, MlflowException) and exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
        return error_outcome(400, "BAD_REQUEST", f"input does not fit the chat model: {exc.message}")
    _logger.warning("the chat model raised: %s", exc, exc_info=exc)
    return error_outcome(500, "MODEL_ERROR", f"{type(exc).__name__}: {exc}")


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _request_id(scope: dict) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == b"x-request-id"), None)


async def send_outcome(send: Callable, outcome: Outcome, request_id: bytes | None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(outcome.body)).encode())]
    if outcome.completion_tokens is not None:
        headers.append((b"x-completion-tokens", str(outcome.completion_tokens).encode()))
    if request_id:
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": outcome.body})
