"""The data plane's predict endpoint as a plain ASGI app: reading the body within the size limit,
picking out three headers, writing the reply; `Gateway.handle` does the rest. The chat route
(chat.py) is the same endpoint with its own way of answering.
"""

from __future__ import annotations

from typing import NamedTuple

from .dataplane import Gateway
from .replies import GatewayReply, body_too_large, new_request_id


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class PredictEndpoint:
    """POST /groups/{group_id}/<path> or /services/{service_id}/<path>."""

    def __init__(self, gateway: Gateway, param: str, path: str) -> None:
        self.gateway = gateway
        self.param = param
        self.path = path

    async def __call__(self, scope, receive, send) -> None:
        authorization = request_id = content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value
        limit = self.gateway.max_body_bytes
        try:
            if content_length is not None and content_length.isdigit() and int(content_length) > limit:
                raise _BodyTooLarge
            body = await _read_body(receive, limit)
        except _BodyTooLarge:
            reply = body_too_large(limit).reply(new_request_id(request_id))
        except _ClientGone:
            return
        else:
            ident = scope["path_params"][self.param]
            group_id, service_id = (ident, None) if self.param == "group_id" else (None, ident)
            request = Request(group_id, service_id, body, authorization, request_id, content_type)
            await self.answer(request, receive, send)
            return
        await send_reply(send, reply)

    async def answer(self, request: Request, receive, send) -> None:
        """Answer a request whose body is read (the chat route streams from here)."""
        reply = await self.gateway.handle(
            request.group_id,
            request.service_id,
            self.path,
            request.body,
            request.authorization,
            request.request_id,
            request.content_type,
        )
        await send_reply(send, reply)


class Request(NamedTuple):
    """What a data-plane route reads of a request before answering it."""

    group_id: str | None
    service_id: str | None
    body: bytes
    authorization: str | None
    request_id: str | None
    content_type: str | None


async def _read_body(receive, limit: int) -> bytes:
    """The request body, refusing it as soon as it grows past `limit` (a chunked body or a
    Content-Length that lied)."""
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def send_reply(send, reply: GatewayReply) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
