"""`ModelServiceInterfaceCallTest`: call a group's data plane as a client would, from the console."""

from __future__ import annotations

import json
from typing import Any

from tcdeploy.protocol.chat import CHAT_PATH
from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.urls import validate_relative_url

from .context import Context, required

# What a service serves (the chat route answers on LLM services); any other well-formed path is
# answered as the service would: a 404.
SERVED_PATHS = ("/predict", "/invocations", CHAT_PATH)


async def call_test(ctx: Context, req: Any) -> dict:
    """The reply is the real API's `CurlResponseRaw`: a JSON text of the upstream reply's headers
    plus `status`, and (our extension, see docs/wire.md) its `body`."""
    try:
        path = validate_relative_url(required(req.RelativeUrl, "RelativeUrl"))
    except ValueError as exc:
        raise InvalidParameterValue("RelativeUrl", str(exc)) from None
    service_ref = required(req.ServiceId, "ServiceId")
    # The seed plugin and the console send the group's id as ServiceId too: that calls the group.
    group_ref = req.ServiceGroupId or service_ref
    if path not in SERVED_PATHS:
        ctx.backend.group(ctx.workspace, group_ref)  # an unknown group is still not found
        return {"Data": {"CurlResponseRaw": _raw(404, {"content-length": "0"}, b"")}}
    reply = await ctx.backend.call(
        ctx.workspace, group_ref, service_ref, body=(req.CurlData or "").encode(), token=req.AuthTokenValue, path=path
    )
    return {"Data": {"CurlResponseRaw": _raw(reply.status, reply.headers, reply.body)}}


def _raw(status: int, headers: dict[str, str], body: bytes) -> str:
    shown = {_title(name): value for name, value in headers.items()}
    shown["X-TiGateway-Upstream-Status"] = str(status)
    return json.dumps({**shown, "status": status, "body": body.decode("utf-8", "replace")})


def _title(header: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in header.split("-"))
