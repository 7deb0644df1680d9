"""Services (MLflow deployments) on the wire: create, update, delete, get, and list by group."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.schema import WireModel

from ..backend import ModelRef
from .context import Context, required
from .views import service_detail, wedata_group

# Settings an update may change, all kept in the service's spec under their wire names.
SPEC_FIELDS = (
    "InstanceType",
    "Replicas",
    "ChargeType",
    "ScaleMode",
    "ServiceLimit",
    "ScheduledAction",
    "CatalogName",
    "SchemaName",
    "BatchConfig",
    "LogEnable",
    "LogConfig",
    "InferenceTablePushEnable",
    "ServiceDescription",
    "ModelSource",
    "ServicePort",
)
# Members of the create request (not of its Services item) that the service keeps in its spec.
CREATE_FIELDS = {
    "LogEnable",
    "LogConfig",
    "InferenceTablePushEnable",
    "ServiceDescription",
    "ModelSource",
    "CatalogPath",
    "SchemaPath",
    "PayloadPath",
}


def model_ref(info: WireModel | None) -> ModelRef:
    if info is None:
        return ModelRef()
    return ModelRef(path=info.ModelPath, name=info.Name, version=info.Version)


async def create_services(ctx: Context, req: Any) -> dict:
    name = required(req.ServiceName, "ServiceName")
    item = required(req.Services, "Services")[0]
    required(item.InstanceType, "Services.0.InstanceType")
    spec = {
        **item.model_dump(exclude_none=True),
        "Replicas": 1 if item.Replicas is None else item.Replicas,
        **req.model_dump(exclude_none=True, include=CREATE_FIELDS),
    }
    service = await ctx.backend.create_service(
        ctx.workspace,
        name,
        spec=spec,
        model=model_ref(item.MlModelInfo),
        group_ref=req.ServiceGroupId,
        authorization=bool(req.AuthorizationEnable),
    )
    return {"Data": service_detail(ctx, ctx.backend.snapshot(service, events=True))}


async def update_service(ctx: Context, req: Any) -> dict:
    changes = req.model_dump(exclude_none=True, include=set(SPEC_FIELDS))
    if req.MlModelInfo is not None:
        changes["MlModelInfo"] = req.MlModelInfo.model_dump(exclude_none=True)
    service = await ctx.backend.update_service(
        ctx.workspace,
        req.ServiceId,
        action=req.ServiceAction,
        replicas=req.Replicas,
        changes=changes,
        model=model_ref(req.MlModelInfo) if req.MlModelInfo else None,
        authorization=req.AuthorizationEnable,
    )
    return {"Data": service_detail(ctx, ctx.backend.snapshot(service, events=True))}


async def delete_service(ctx: Context, req: Any) -> dict:
    service = await ctx.backend.remove_service(ctx.workspace, required(req.ServiceId, "ServiceId"))
    return {"Data": {"ServiceId": service.id}}


async def get_service(ctx: Context, req: Any) -> dict:
    service = ctx.backend.service(ctx.workspace, required(req.ServiceId, "ServiceId"))
    return {"Data": service_detail(ctx, ctx.backend.snapshot(service, events=True))}


FILTERABLE = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName", "Status")


async def list_groups(ctx: Context, req: Any) -> dict:
    filters = [(f.Name, set(f.Values or ()), False, False) for f in req.Filters or ()]
    for name, *_ in filters:
        if name not in FILTERABLE:
            raise InvalidParameterValue("Filters.Name", f"{name!r} is not a filter; use one of {', '.join(FILTERABLE)}")
    if req.ServiceGroupId:
        filters.append(("ServiceGroupId", {req.ServiceGroupId}, False, False))
    backend = ctx.backend
    groups = [wedata_group(ctx, backend.group_snapshot(g)) for g in backend.groups(ctx.workspace)]
    matching = [g for g in groups if all(_matches(g, *f) for f in filters)]
    return {
        "Data": {
            "TotalCount": len(matching),
            "Groups": matching[req.Offset : req.Offset + req.Limit],
        }
    }


def _matches(group: dict, name: str, values: set[str], fuzzy: bool, negative: bool) -> bool:
    if name.startswith("ServiceGroup"):
        candidates = [group[name]]
    else:
        candidates = [s[name] for s in group["Services"]]
    hit = any((any(v in c for v in values) if fuzzy else c in values) for c in candidates) if values else True
    return hit != negative
