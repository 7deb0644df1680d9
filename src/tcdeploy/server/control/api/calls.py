"""`ModelServiceInterfaceCallTest`: call a group's data plane as a client would, from the console."""

from __future__ import annotations

import json
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from .context import Context

CALLABLE_PATHS = ("/predict", "/invocations")


async def call_test(ctx: Context, req: Any) -> dict:
    path = req.RelativeUrl or "/predict"
    if path not in CALLABLE_PATHS:
        raise InvalidParameterValue("RelativeUrl", f"must be one of {', '.join(CALLABLE_PATHS)}")
    # The seed plugin sends the group id as ServiceId too; only a service id picks one version.
    reply = await ctx.backend.call(
        ctx.workspace,
        req.ServiceGroupId,
        req.ServiceId,
        body=req.CurlData.encode(),
        token=req.AuthTokenValue,
        path=path,
    )
    raw = json.dumps({"status": reply.status, "body": reply.body.decode("utf-8", "replace")})
    return {"Data": {"CurlResponseRaw": raw}}
