"""Services (MLflow deployments) and their groups on the wire: create, update, delete, get, list."""

from __future__ import annotations

import math
from typing import Any

from tcdeploy.protocol.chat import SERVICE_TYPES
from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.schema import WireModel

from ..backend import ModelRef
from .context import Context, required
from .views import wedata_group, wedata_service

# Members of an update that are not settings kept in the service's spec.
NOT_SETTINGS = {"ServiceId", "WorkspaceId", "ServiceAction", "MlModelInfo", "AuthorizationEnable", "Status"}
# Members of the create request (not of its Services item) that the service keeps in its spec.
CREATE_FIELDS = {
    "LogEnable", "LogConfig", "InferenceTablePushEnable", "ServiceDescription", "ModelSource",
    "CatalogPath", "SchemaPath", "PayloadPath", "ServiceType",
}  # fmt: skip
DEFAULT_PAGE_SIZE = 10


def model_ref(info: WireModel | None) -> ModelRef:
    if info is None:
        return ModelRef()
    return ModelRef(path=info.ModelPath, name=info.Name, version=info.Version)


async def create_services(ctx: Context, req: Any) -> dict:
    """`CreateMLModelServices`: a service (in `ServiceGroupId`, or in a new group named after it);
    the reply is its whole group."""
    name = required(req.ServiceName, "ServiceName")
    item = required(req.Services, "Services")[0]
    required(item.InstanceType, "Services.0.InstanceType")
    spec = {
        **item.model_dump(exclude_none=True),
        "Replicas": 1 if item.Replicas is None else item.Replicas,
        **req.model_dump(exclude_none=True, include=CREATE_FIELDS),
    }
    service = await ctx.backend.create_service(
        ctx.workspace, name, spec=spec, model=model_ref(item.MlModelInfo),
        group_ref=req.ServiceGroupId, authorization=bool(req.AuthorizationEnable),
    )  # fmt: skip
    group = ctx.backend.group(ctx.workspace, service.group_id)
    return {"Data": wedata_group(ctx, ctx.backend.group_snapshot(group))}


async def update_service(ctx: Context, req: Any) -> dict:
    changes = req.model_dump(exclude_none=True, exclude=NOT_SETTINGS)
    if req.MlModelInfo is not None:
        changes["MlModelInfo"] = req.MlModelInfo.model_dump(exclude_none=True)
    service = await ctx.backend.update_service(
        ctx.workspace, req.ServiceId, action=req.ServiceAction or None, replicas=req.Replicas,
        changes=changes, model=model_ref(req.MlModelInfo) if req.MlModelInfo else None,
        authorization=req.AuthorizationEnable,
    )  # fmt: skip
    return {"Data": wedata_service(ctx, ctx.backend.snapshot(service))}


async def delete_service(ctx: Context, req: Any) -> dict:
    await ctx.backend.remove_service(ctx.workspace, required(req.ServiceId, "ServiceId"))
    return {"Data": {"Status": True}}


async def get_service(ctx: Context, req: Any) -> dict:
    service = ctx.backend.service(ctx.workspace, required(req.ServiceId, "ServiceId"))
    return {"Data": wedata_service(ctx, ctx.backend.snapshot(service))}


FILTERABLE = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName", "Status")
ORDERABLE = {"CreateTime": "created", "UpdateTime": "updated", "ServiceGroupName": "name"}


async def list_groups(ctx: Context, req: Any) -> dict:
    """`ListMLModelServiceGroups`: filtered, ordered, paged with PageNumber/PageSize (the seed
    plugin's Offset/Limit and ServiceGroupId are honoured as documented extensions)."""
    filters = [(f.Name, set(f.Values or ())) for f in req.Filters or ()]
    for i, (name, _) in enumerate(filters):
        if name not in FILTERABLE:
            raise InvalidParameterValue(
                f"Filters.{i}.Name", f"{name!r} is not a filter; use one of {', '.join(FILTERABLE)}"
            )
    if req.ServiceGroupId:
        filters.append(("ServiceGroupId", {req.ServiceGroupId}))
    if req.ServiceType:
        if req.ServiceType not in SERVICE_TYPES:
            raise InvalidParameterValue("ServiceType", f"must be one of {', '.join(SERVICE_TYPES)}")
        filters.append(("ServiceType", {SERVICE_TYPES[req.ServiceType]}))
    groups = _ordered(ctx.backend.groups(ctx.workspace), req.OrderField)
    rows = [wedata_group(ctx, ctx.backend.group_snapshot(g)) for g in groups]
    matching = [g for g in rows if all(_matches(g, name, values) for name, values in filters)]
    page, size, start = _page(req)
    return {"Data": {
        "PageNumber": page,
        "PageSize": size,
        "TotalCount": len(matching),
        "TotalPageNumber": math.ceil(len(matching) / size),
        "Rows": matching[start : start + size],
    }}  # fmt: skip


def _ordered(groups: list, order: WireModel | None) -> list:
    if order is None or not order.Name:
        return groups
    if order.Name not in ORDERABLE:
        raise InvalidParameterValue("OrderField.Name", f"must be one of {', '.join(ORDERABLE)}")
    direction = (order.Direction or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise InvalidParameterValue("OrderField.Direction", "must be ASC or DESC")
    return sorted(groups, key=lambda g: getattr(g, ORDERABLE[order.Name]), reverse=direction == "DESC")


def _page(req: Any) -> tuple[int, int, int]:
    """(page number, page size, first row) from PageNumber/PageSize, or the seed's Offset/Limit."""
    if req.PageNumber is None and req.PageSize is None and (req.Offset is not None or req.Limit is not None):
        size = req.Limit or DEFAULT_PAGE_SIZE
        start = req.Offset or 0
        return start // size + 1, size, start
    page, size = req.PageNumber or 1, req.PageSize or DEFAULT_PAGE_SIZE
    return page, size, (page - 1) * size


def _matches(group: dict, name: str, values: set[str]) -> bool:
    if not values:
        return True
    if name.startswith("ServiceGroup") or name == "ServiceType":
        return group[name] in values
    if name == "Status":
        return group["Status"] in values or any(s["Status"] in values for s in group["Services"])
    return any(s[name] in values for s in group["Services"])
