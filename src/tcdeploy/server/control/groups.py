"""Service groups (MLflow endpoints) through TI-ONE's actions: create, describe, weights, delete."""
from __future__ import annotations

import time

from ...protocol.actions import (
    CreateModelServiceGroup,
    DeleteModelServiceGroup,
    DescribeModelServiceGroup,
    DescribeModelServiceGroups,
    ModifyServiceGroupWeights,
)
from ...protocol.errors import RESOURCE_IN_USE, ApiError, invalid_value
from ..store import GroupRecord
from .actions import Context, action
from .core import new_id
from .services import remove_service
from .tokens import enable_auth
from .views import sdk_group


@action("tione", CreateModelServiceGroup)
async def create_group(ctx: Context, req: CreateModelServiceGroup) -> dict:
    core = ctx.core
    if core.store.group_by_name(ctx.workspace, req.ServiceGroupName):
        raise ApiError(
            RESOURCE_IN_USE, f"ServiceGroupName: a group named {req.ServiceGroupName!r} already exists"
        )
    now = time.time()
    group = GroupRecord(new_id("grp"), ctx.workspace, req.ServiceGroupName, False, now, now)
    core.store.insert_group(group)
    if req.AuthorizationEnable:
        enable_auth(core, group.id)
    core.lifecycle.publish_group(group.id)
    return {"ServiceGroup": sdk_group(core, core.store.group(group.id))}


@action("tione", DescribeModelServiceGroup)
async def describe_group(ctx: Context, req: DescribeModelServiceGroup) -> dict:
    group = ctx.core.group_in(ctx.workspace, req.ServiceGroupId)
    return {"ServiceGroup": sdk_group(ctx.core, group)}


GROUP_FILTERS = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName")


@action("tione", DescribeModelServiceGroups)
async def describe_groups(ctx: Context, req: DescribeModelServiceGroups) -> dict:
    core = ctx.core
    for f in req.Filters:
        if f.Name not in GROUP_FILTERS:
            raise invalid_value("Filters.Name", f"{f.Name!r} is not a filter; use one of {', '.join(GROUP_FILTERS)}")
    groups = core.store.groups(ctx.workspace)
    key = "created" if req.OrderField == "CreateTime" else "updated"
    groups.sort(key=lambda g: getattr(g, key), reverse=req.Order == "DESC")
    matching = [g for g in groups if all(_group_matches(core, g, f) for f in req.Filters)]
    page = matching[req.Offset:req.Offset + req.Limit]
    return {
        "TotalCount": len(matching),
        "GlobalTotalCount": len(groups),
        "ServiceGroups": [sdk_group(core, g) for g in page],
    }


def _group_matches(core, group: GroupRecord, f) -> bool:
    if f.Name == "ServiceGroupId":
        candidates = [group.id]
    elif f.Name == "ServiceGroupName":
        candidates = [group.name]
    else:
        services = core.store.services(group.id)
        candidates = [s.id if f.Name == "ServiceId" else s.name for s in services]
    values = set(f.Values)
    hit = any((any(v in c for v in values) if f.Fuzzy else c in values) for c in candidates)
    return hit != f.Negative if values else True


@action("tione", ModifyServiceGroupWeights)
async def modify_weights(ctx: Context, req: ModifyServiceGroupWeights) -> dict:
    core = ctx.core
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    services = {s.id: s for s in core.store.services(group.id)}
    by_name = {s.name: s.id for s in services.values()}
    weights = {s.id: s.weight for s in services.values()}
    for i, entry in enumerate(req.Weights):
        service_id = entry.ServiceId if entry.ServiceId in services else by_name.get(entry.ServiceId)
        if service_id is None:
            raise invalid_value(
                f"Weights.{i}.ServiceId", f"{entry.ServiceId!r} is not a service of group {group.id}"
            )
        weights[service_id] = entry.Weight
    if sum(weights.values()) <= 0:
        raise invalid_value("Weights", "at least one service of the group needs a weight above 0")
    with core.store.transaction():
        for service_id, weight in weights.items():
            if services[service_id].weight != weight:
                core.store.update_service(service_id, weight=weight)
        core.store.touch_group(group.id)
    core.lifecycle.publish_group(group.id)
    return {"ServiceGroup": sdk_group(core, core.store.group(group.id))}


@action("tione", DeleteModelServiceGroup)
async def delete_group(ctx: Context, req: DeleteModelServiceGroup) -> dict:
    core = ctx.core
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    for service in core.store.services(group.id):
        await remove_service(ctx, service)
    core.store.delete_group(group.id)
    core.lifecycle.publish_group(group.id)
    return {}
