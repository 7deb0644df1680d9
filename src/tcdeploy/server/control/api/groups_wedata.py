"""Service groups through wedata's actions: get one, delete one, describe it, move its weights; and
whether a service name is free, and the older single-service create (its members flat)."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from .context import Context, required
from .services import model_ref
from .views import wedata_group, wedata_service

# Members of the flat create that are about the service process, not stored as its settings.
NOT_SPEC = {"ServiceName", "WorkspaceId", "ServiceGroupId", "MlModelInfo", "AuthorizationEnable", "NewVersion"}


async def get_group(ctx: Context, req: Any) -> dict:
    group = ctx.backend.group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"))
    return {"Data": wedata_group(ctx, ctx.backend.group_snapshot(group))}


async def delete_group(ctx: Context, req: Any) -> dict:
    await ctx.backend.delete_group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"))
    return {"Data": {"Status": True}}


async def update_group(ctx: Context, req: Any) -> dict:
    changes = {} if req.Description is None else {"Description": req.Description}
    ctx.backend.update_group_settings(ctx.workspace, req.ServiceGroupId, changes)
    return {"Data": {"Status": True}}


async def update_weights(ctx: Context, req: Any) -> dict:
    entries = required(req.WeightEntries, "WeightEntries")
    ctx.backend.set_weights(
        ctx.workspace, req.ServiceGroupId, [(e.ServiceId, e.Weight) for e in entries], field="WeightEntries"
    )
    return {"Data": {"TiOneRequestId": ctx.request_id}}


async def check_duplicate_name(ctx: Context, req: Any) -> dict:
    # Status true means taken ("重名", the name is a duplicate), as the published example shows.
    return {"Data": {"Status": ctx.backend.name_taken(ctx.workspace, required(req.ServiceName, "ServiceName"))}}


async def create_service(ctx: Context, req: Any) -> dict:
    """`CreateMLModelService`: one service, its settings at the top of the request. With a
    `ServiceGroupId` it is a new version of that group (as `NewVersion` true says); without one it
    makes a group of its own name."""
    if req.NewVersion and not req.ServiceGroupId:
        raise InvalidParameterValue("NewVersion", "a new version needs the ServiceGroupId of its group")
    required(req.InstanceType, "InstanceType")
    spec = {
        **req.model_dump(exclude_none=True, exclude=NOT_SPEC),
        "Replicas": 1 if req.Replicas is None else req.Replicas,
    }
    if req.MlModelInfo is not None:
        spec["MlModelInfo"] = req.MlModelInfo.model_dump(exclude_none=True)
    service = await ctx.backend.create_service(
        ctx.workspace,
        req.ServiceName,
        spec=spec,
        model=model_ref(req.MlModelInfo),
        group_ref=req.ServiceGroupId,
        authorization=bool(req.AuthorizationEnable),
        field="",
    )
    return {"Data": wedata_service(ctx, ctx.backend.snapshot(service, events=True))}
