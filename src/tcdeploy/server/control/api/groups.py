"""Service groups (MLflow endpoints) through TI-ONE's actions: create, describe, weights, delete."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.states import tione_word

from ..backend import GroupSnapshot
from .context import Context, required
from .tione_views import tione_group
from .views import group_status

GROUP_FILTERS = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName", "Status")
DEFAULT_LIMIT = 20


def group_reply(ctx: Context, group) -> dict:
    return {"ServiceGroup": tione_group(ctx, ctx.backend.group_snapshot(group))}


async def create_group(ctx: Context, req: Any) -> dict:
    group = ctx.backend.create_group(ctx.workspace, req.ServiceGroupName, authorization=bool(req.AuthorizationEnable))
    return group_reply(ctx, group)


async def describe_group(ctx: Context, req: Any) -> dict:
    return group_reply(ctx, ctx.backend.group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId")))


async def describe_groups(ctx: Context, req: Any) -> dict:
    filters = req.Filters or []
    for i, f in enumerate(filters):
        if f.Name not in GROUP_FILTERS:
            raise InvalidParameterValue(
                f"Filters.{i}.Name", f"{f.Name!r} is not a filter; use one of {', '.join(GROUP_FILTERS)}"
            )
    groups = ctx.backend.groups(ctx.workspace)
    key = "updated" if req.OrderField == "UpdateTime" else "created"
    groups.sort(key=lambda g: getattr(g, key), reverse=req.Order == "DESC")
    snaps = [ctx.backend.group_snapshot(g) for g in groups]
    matching = [s for s in snaps if all(_group_matches(s, f) for f in filters)]
    offset, limit = req.Offset or 0, req.Limit or DEFAULT_LIMIT
    return {
        "TotalCount": len(matching),
        "GlobalTotalCount": len(groups),
        "ServiceGroups": [tione_group(ctx, s) for s in matching[offset : offset + limit]],
    }


def _group_matches(snap: GroupSnapshot, f: Any) -> bool:
    """A filter on the group's own members or on any of its services' (`ServiceName`, ours: a
    service's name); the values of one filter are alternatives, `Fuzzy` matches a part of one,
    `Negative` turns the filter round."""
    values = set(f.Values or ())
    if not values:
        return True
    candidates = _candidates(snap, f.Name)
    hit = any((any(v in c for v in values) if f.Fuzzy else c in values) for c in candidates)
    return hit != bool(f.Negative)


def _candidates(snap: GroupSnapshot, name: str) -> list[str]:
    services = [s.service for s in snap.services]
    if name == "ServiceGroupId":
        return [snap.group.id]
    if name == "ServiceGroupName":
        return [snap.group.name]
    if name == "ServiceId":
        return [s.id for s in services]
    if name == "ServiceName":
        return [s.name for s in services]
    return [tione_word(group_status(snap)), *(tione_word(s.status) for s in services)]


async def modify_weights(ctx: Context, req: Any) -> dict:
    weights = [(required(w.ServiceId, f"Weights.{i}.ServiceId"), w.Weight) for i, w in enumerate(req.Weights or ())]
    for i, (_, weight) in enumerate(weights):
        required(weight, f"Weights.{i}.Weight")
    group = ctx.backend.set_weights(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"), weights)
    return group_reply(ctx, group)


async def delete_group(ctx: Context, req: Any) -> dict:
    await ctx.backend.delete_group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"))
    return {}
