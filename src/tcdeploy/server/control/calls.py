"""`ModelServiceInterfaceCallTest`: call a group's data plane as a client would, from the console."""
from __future__ import annotations

import json

from ...protocol.actions import ModelServiceInterfaceCallTest
from ...protocol.errors import invalid_value
from .actions import Context, action

CALLABLE_PATHS = ("/predict", "/invocations")


@action("wedata", ModelServiceInterfaceCallTest)
async def call_test(ctx: Context, req: ModelServiceInterfaceCallTest) -> dict:
    core = ctx.core
    path = req.RelativeUrl or "/predict"
    if path not in CALLABLE_PATHS:
        raise invalid_value("RelativeUrl", f"must be one of {', '.join(CALLABLE_PATHS)}")
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    service_id = None
    # The seed plugin sends the group id as ServiceId too; only a service id picks one version.
    if req.ServiceId and req.ServiceId != req.ServiceGroupId and req.ServiceId != group.name:
        service = core.service_in(ctx.workspace, req.ServiceId)
        if service.group_id != group.id:
            raise invalid_value("ServiceId", f"{req.ServiceId!r} is not a service of group {group.id}")
        service_id = service.id
    headers = {"content-type": "application/json"}
    if req.AuthTokenValue:
        headers["authorization"] = req.AuthTokenValue
    reply = await core.gateway.call(
        group_id=None if service_id else group.id, service_id=service_id,
        body=req.CurlData.encode(), headers=headers, path=path,
    )
    raw = json.dumps({"status": reply.status, "body": reply.body.decode("utf-8", "replace")})
    return {"Data": {"CurlResponseRaw": raw}}
