"""Service groups (MLflow endpoints) through TI-ONE's actions: create, describe, weights, delete."""

from __future__ import annotations

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.tione import (
    CreateModelServiceGroup,
    DeleteModelServiceGroup,
    DescribeModelServiceGroup,
    DescribeModelServiceGroups,
    Filter,
    ModifyServiceGroupWeights,
)

from ..backend import GroupSnapshot
from .context import Context
from .views import sdk_group

GROUP_FILTERS = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName")


async def create_group(ctx: Context, req: CreateModelServiceGroup) -> dict:
    group = ctx.backend.create_group(ctx.workspace, req.ServiceGroupName, authorization=bool(req.AuthorizationEnable))
    return {"ServiceGroup": sdk_group(ctx.backend.group_snapshot(group))}


async def describe_group(ctx: Context, req: DescribeModelServiceGroup) -> dict:
    group = ctx.backend.group(ctx.workspace, req.ServiceGroupId)
    return {"ServiceGroup": sdk_group(ctx.backend.group_snapshot(group))}


async def describe_groups(ctx: Context, req: DescribeModelServiceGroups) -> dict:
    for f in req.Filters:
        if f.Name not in GROUP_FILTERS:
            raise InvalidParameterValue(
                "Filters.Name", f"{f.Name!r} is not a filter; use one of {', '.join(GROUP_FILTERS)}"
            )
    groups = ctx.backend.groups(ctx.workspace)
    key = "created" if req.OrderField == "CreateTime" else "updated"
    groups.sort(key=lambda g: getattr(g, key), reverse=req.Order == "DESC")
    snaps = [ctx.backend.group_snapshot(g) for g in groups]
    matching = [s for s in snaps if all(_group_matches(s, f) for f in req.Filters)]
    return {
        "TotalCount": len(matching),
        "GlobalTotalCount": len(groups),
        "ServiceGroups": [sdk_group(s) for s in matching[req.Offset : req.Offset + req.Limit]],
    }


def _group_matches(snap: GroupSnapshot, f: Filter) -> bool:
    if f.Name == "ServiceGroupId":
        candidates = [snap.group.id]
    elif f.Name == "ServiceGroupName":
        candidates = [snap.group.name]
    else:
        candidates = [s.service.id if f.Name == "ServiceId" else s.service.name for s in snap.services]
    values = set(f.Values)
    hit = any((any(v in c for v in values) if f.Fuzzy else c in values) for c in candidates)
    return hit != f.Negative if values else True


async def modify_weights(ctx: Context, req: ModifyServiceGroupWeights) -> dict:
    group = ctx.backend.set_weights(ctx.workspace, req.ServiceGroupId, [(w.ServiceId, w.Weight) for w in req.Weights])
    return {"ServiceGroup": sdk_group(ctx.backend.group_snapshot(group))}


async def delete_group(ctx: Context, req: DeleteModelServiceGroup) -> dict:
    await ctx.backend.delete_group(ctx.workspace, req.ServiceGroupId)
    return {}
