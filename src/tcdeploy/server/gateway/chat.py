"""The OpenAI chat API of LLM services, on their group and version URLs:

- `POST …/v1/chat/completions`: the body is checked here (a bad one is a 400 naming the member),
  then answered by the data plane as any request is (auth, weights, limits, the inference
  table); with `stream: true` the reply is relayed as server-sent events (streaming.py).
- `GET …/v1/models` (and `…/v1/models/<name>`): the one model the URL serves, named after the
  group (or the service).

Time to first token and tokens per second are kept per (group, service) beside the request
metrics, read from what each reply's exchange reports.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Histogram
from starlette.routing import BaseRoute, Route

from tcdeploy.protocol.chat import CHAT_PATH, MODELS_PATH, ChatBodyError, parse_chat

from .auth import authorized
from .dataplane import Gateway
from .endpoint import PredictEndpoint, Request, send_reply
from .replies import JSON, GatewayError, GatewayReply, new_request_id, not_found, unauthenticated
from .routes import Group, Version
from .streaming import SseRelay
from .transport import REQUEST_TRANSPORT

TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class ChatEndpoint(PredictEndpoint):
    """POST /groups/{group_id}/v1/chat/completions or /services/{service_id}/v1/chat/completions."""

    def __init__(self, gateway: Gateway, param: str) -> None:
        super().__init__(gateway, param, CHAT_PATH)

    async def answer(self, request: Request, receive, send) -> None:
        request = request._replace(request_id=new_request_id(request.request_id))
        try:
            _check_llm(self.gateway, request)  # before the body: a caller without a key learns nothing
            chat = parse_chat(request.body)
        except ChatBodyError as exc:
            await send_reply(send, GatewayError(400, "BAD_REQUEST", str(exc)).reply(request.request_id))
            return
        except GatewayError as error:
            await send_reply(send, error.reply(request.request_id))
            return
        if chat.get("stream"):
            await self._stream(request, receive, send)
        else:
            await super().answer(request, receive, send)

    async def _stream(self, request: Request, receive, send) -> None:
        gone = asyncio.Event()
        relay = SseRelay(send, gone, request.request_id)  # type: ignore[arg-type]
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        carried_by = REQUEST_TRANSPORT.set(relay)
        try:
            reply = await self.gateway.handle(
                request.group_id,
                request.service_id,
                CHAT_PATH,
                request.body,
                request.authorization,
                request.request_id,
                JSON,
            )
        finally:
            REQUEST_TRANSPORT.reset(carried_by)
            watcher.cancel()
        if not relay.started:  # refused, or the replica answered whole (a 400, say)
            await send_reply(send, reply)
            return
        if reply.status >= 500:  # the replica broke off mid-stream: say so in the stream
            await _send_event(send, {"error": {"message": _message(reply), "type": "server_error"}})
        await send({"type": "http.response.body", "body": b""})


class ModelsEndpoint:
    """GET /groups/{group_id}/v1/models or /services/{service_id}/v1/models (OpenAI's list), and
    …/v1/models/{model} (OpenAI's retrieve: the one model, by its name)."""

    def __init__(self, gateway: Gateway, param: str) -> None:
        self.gateway = gateway
        self.param = param

    async def __call__(self, scope, receive, send) -> None:
        ident = scope["path_params"][self.param]
        headers = dict(scope["headers"])
        request_id = new_request_id((headers.get(b"x-request-id") or b"").decode("latin-1") or None)
        try:
            group, name = self._served(ident, (headers.get(b"authorization") or b"").decode("latin-1"))
        except GatewayError as error:
            await send_reply(send, error.reply(request_id))
            return
        model = {"id": name, "object": "model", "created": 0, "owned_by": "tcdeploy"}
        asked = scope["path_params"].get("model")
        if asked is not None and asked != name:
            await send_reply(send, not_found(f"model {asked!r} (this URL serves {name!r})").reply(request_id))
            return
        body = json.dumps(model if asked is not None else {"object": "list", "data": [model]}).encode()
        await send_reply(send, GatewayReply(200, body, {"content-type": JSON, "x-request-id": request_id}))

    def _served(self, ident: str, authorization: str) -> tuple[Group, str]:
        ids = (ident, None) if self.param == "group_id" else (None, ident)
        request = Request(*ids, b"", authorization, None, None)
        _check_llm(self.gateway, request)
        if request.group_id is not None:
            group = self.gateway.routes.group(ident)
            return group, group.name  # type: ignore[union-attr]
        group, version = self.gateway.routes.service(ident)  # type: ignore[misc]
        return group, version.service_name


def _check_llm(gateway: Gateway, request: Request) -> None:
    """Raise a 404 unless the URL is an LLM service's (or an LLM group's), and a 401 before
    saying which it is to a caller without the group's token."""
    if request.service_id is not None:
        found = gateway.routes.service(request.service_id)
        if found is None:
            raise not_found(f"service {request.service_id!r}")
        group, chats = found[0], found[1].chat
    else:
        group = gateway.routes.group(request.group_id)  # type: ignore[arg-type]
        if group is None:
            raise not_found(f"service group {request.group_id!r}")
        chats = any(v.chat for v in group.versions.values())
    if group.auth_enabled and not authorized(request.authorization or "", group.token_hashes):
        raise unauthenticated()
    if not chats:
        raise GatewayError(404, "ENDPOINT_NOT_FOUND", "this is not an LLM service: use /predict")


async def _watch_disconnect(receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _send_event(send, event: dict) -> None:
    body = b"data: " + json.dumps(event).encode() + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": True})


def _message(reply: GatewayReply) -> str:
    try:
        return str(json.loads(reply.body).get("message"))
    except (ValueError, AttributeError):
        return reply.body.decode("utf-8", "replace")[:500]


class ChatMetrics:
    """Time to first token and completion tokens per second, per (group, service)."""

    def __init__(self, gateway: Gateway) -> None:
        registry = gateway.metrics.registry
        self.ttft = Histogram(
            "tcdeploy_time_to_first_token_seconds",
            "Time from routing a streamed chat request to its first event reaching the client",
            ["group", "service"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.rate = Histogram(
            "tcdeploy_completion_tokens_per_second",
            "Completion tokens (words) per second of generation, per chat reply",
            ["group", "service"],
            buckets=RATE_BUCKETS,
            registry=registry,
        )
        self._seen: set[tuple[str, str]] = set()
        gateway.reply_observers.append(self.observe)
        gateway.routes.on_group_removed(self.forget_group)

    def observe(self, group: Group, version: Version, headers: dict[str, str], latency: float) -> None:
        tokens = headers.get("x-completion-tokens")
        if not version.chat or tokens is None or not tokens.isdigit():
            return
        key = (group.group_id, version.service_id)
        self._seen.add(key)
        generating = latency
        ttft = _seconds(headers.get("x-ttft-ms"))
        if ttft is not None:
            self.ttft.labels(*key).observe(ttft)
            if int(tokens) > 1 and latency > ttft:
                generating = latency - ttft  # the rate of generation, once it has begun
        if generating > 0:
            self.rate.labels(*key).observe(int(tokens) / generating)

    def forget_group(self, group_id: str) -> None:
        for key in [k for k in self._seen if k[0] == group_id]:
            self._seen.discard(key)
            for family in (self.ttft, self.rate):
                try:
                    family.remove(*key)
                except KeyError:
                    pass


def _seconds(milliseconds: str | None) -> float | None:
    try:
        return float(milliseconds) / 1000.0 if milliseconds is not None else None
    except ValueError:
        return None


def chat_routes(gateway: Gateway) -> list[BaseRoute]:
    """The chat routes under both URL kinds; the chat metrics start observing the gateway."""
    ChatMetrics(gateway)
    routes: list[BaseRoute] = []
    for prefix, param in (("/groups/{group_id}", "group_id"), ("/services/{service_id}", "service_id")):
        routes.append(Route(prefix + CHAT_PATH, ChatEndpoint(gateway, param), methods=["POST"]))
        routes.append(Route(prefix + MODELS_PATH, ModelsEndpoint(gateway, param), methods=["GET"]))
        routes.append(Route(prefix + MODELS_PATH + "/{model}", ModelsEndpoint(gateway, param), methods=["GET"]))
    return routes
