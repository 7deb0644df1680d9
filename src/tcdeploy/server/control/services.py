"""Services (MLflow deployments): create, update, delete, get, list."""
from __future__ import annotations

import time

from ...protocol.actions import (
    CreateMLModelServices,
    DeleteMLModelService,
    GetMLModelService,
    ListMLModelServiceGroups,
    UpdateMLModelService,
)
from ...protocol.errors import (
    LIMIT_EXCEEDED,
    MISSING_PARAMETER,
    RESOURCE_IN_USE,
    ApiError,
    invalid_value,
)
from ..store import GroupRecord, ServiceRecord
from .actions import Context, action
from .core import new_id
from .registry import resolve_model_uri
from .specs import instance_spec
from .views import service_detail, wedata_group

MAX_SERVICES_PER_GROUP = 2
# Settings an update may change, all kept in the service's spec under their wire names.
SPEC_FIELDS = (
    "InstanceType", "Replicas", "ChargeType", "ScaleMode", "ServiceLimit", "ScheduledAction",
    "CatalogName", "SchemaName", "BatchConfig", "LogEnable", "LogConfig",
    "InferenceTablePushEnable", "ServiceDescription", "ModelSource", "ServicePort",
)
# Changing any of these needs new replicas; the rest apply at once.
ROLLING_FIELDS = ("InstanceType", "BatchConfig", "ModelUri")


@action("wedata", CreateMLModelServices)
async def create_services(ctx: Context, req: CreateMLModelServices) -> dict:
    core, ws = ctx.core, ctx.workspace
    item = req.Services[0]
    instance_spec(item.InstanceType, "Services.0.InstanceType")
    if core.store.service_by_name(ws, req.ServiceName):
        raise ApiError(RESOURCE_IN_USE, f"ServiceName: a service named {req.ServiceName!r} already exists")
    group = core.group_in(ws, req.ServiceGroupId) if req.ServiceGroupId else None
    if group is None and core.store.group_by_name(ws, req.ServiceName):
        raise ApiError(
            RESOURCE_IN_USE,
            f"ServiceName: a service group named {req.ServiceName!r} already exists; "
            "pass its ServiceGroupId to add a version to it",
        )
    if group is not None and len(core.store.services(group.id)) >= MAX_SERVICES_PER_GROUP:
        raise ApiError(
            LIMIT_EXCEEDED,
            f"service group {group.id} already holds {MAX_SERVICES_PER_GROUP} services; "
            "delete one before adding another",
        )
    model_uri = await resolve_model_uri(
        ctx, item.MlModelInfo, item.CatalogName, item.SchemaName, "Services.0.MlModelInfo"
    )
    spec = {
        **item.model_dump(exclude_none=True, exclude={"Replicas"}),
        "Replicas": item.Replicas,
        "ModelUri": model_uri,
        **req.model_dump(
            exclude_none=True,
            include={"LogEnable", "LogConfig", "InferenceTablePushEnable", "ServiceDescription",
                     "ModelSource", "CatalogPath", "SchemaPath", "PayloadPath"},
        ),
    }
    now = time.time()
    with core.store.transaction():
        if group is None:
            group = GroupRecord(new_id("grp"), ws, req.ServiceName, req.AuthorizationEnable, now, now)
            core.store.insert_group(group)
        first = not core.store.services(group.id)
        service = ServiceRecord(
            id=new_id("svc"), workspace=ws, group_id=group.id, name=req.ServiceName,
            version=core.store.next_version(group.id), weight=100 if first else 0,
            status="Creating", reason="", spec=spec, created=now, updated=now,
        )
        core.store.insert_service(service)
        core.store.touch_group(group.id)
    if req.AuthorizationEnable:
        from .tokens import enable_auth

        enable_auth(core, group.id)
    core.lifecycle.record(service.id, "Normal", "Creating", f"creating {item.Replicas} replica(s) of {model_uri}")
    core.lifecycle.publish_group(group.id)
    core.lifecycle.apply(service.id)
    return {"Data": service_detail(core, core.store.service(service.id), core.store.group(group.id))}


@action("wedata", UpdateMLModelService)
async def update_service(ctx: Context, req: UpdateMLModelService) -> dict:
    core = ctx.core
    service = core.service_in(ctx.workspace, req.ServiceId)
    if service.status == "CreateFailed" and req.ServiceAction is None and req.MlModelInfo is None:
        raise ApiError("FailedOperation", f"service {service.id} failed to create; update its model or delete it")
    if req.ServiceAction is not None:
        spec = _apply_action(service, req)
    else:
        spec = await _apply_fields(ctx, service, req)
    needs_replicas = (
        req.ServiceAction is not None
        or any(spec.get(f) != service.spec.get(f) for f in ROLLING_FIELDS)
        or spec["Replicas"] != service.replicas
    )
    with core.store.transaction():
        core.store.update_service(service.id, spec=spec)
        if req.AuthorizationEnable is not None:
            core.store.set_group_auth(service.group_id, req.AuthorizationEnable)
    if req.AuthorizationEnable:
        from .tokens import enable_auth

        enable_auth(core, service.group_id)
    if needs_replicas:
        status = {"STOP": "Stopping"}.get(req.ServiceAction or "", "Updating")
        if service.status == "CreateFailed":
            status = "Creating"
        core.lifecycle.set_status(service.id, status)
        core.lifecycle.record(service.id, "Normal", status, _describe_update(req))
        core.lifecycle.apply(service.id, previous_spec=service.spec)
    core.lifecycle.publish_group(service.group_id)
    fresh = core.store.service(service.id)
    return {"Data": service_detail(core, fresh, core.store.group(fresh.group_id))}


def _apply_action(service: ServiceRecord, req: UpdateMLModelService) -> dict:
    spec = dict(service.spec)
    if req.ServiceAction == "STOP":
        spec["Stopped"] = True
    elif req.ServiceAction == "RESUME":
        spec["Stopped"] = False
    elif req.ServiceAction == "SCALE":
        if req.Replicas is None:
            raise ApiError(MISSING_PARAMETER, "Replicas: is required with ServiceAction SCALE")
        spec["Replicas"] = req.Replicas
    return spec


async def _apply_fields(ctx: Context, service: ServiceRecord, req: UpdateMLModelService) -> dict:
    spec = dict(service.spec)
    changes = req.model_dump(exclude_none=True, include=set(SPEC_FIELDS))
    if "InstanceType" in changes:
        instance_spec(changes["InstanceType"])
    spec.update(changes)
    if req.MlModelInfo is not None:
        spec["MlModelInfo"] = req.MlModelInfo.model_dump(exclude_none=True)
        spec["ModelUri"] = await resolve_model_uri(
            ctx, req.MlModelInfo, spec.get("CatalogName"), spec.get("SchemaName"), "MlModelInfo"
        )
    return spec


def _describe_update(req: UpdateMLModelService) -> str:
    if req.ServiceAction:
        return f"{req.ServiceAction} requested" + (f" to {req.Replicas} replica(s)" if req.Replicas is not None else "")
    fields = sorted(req.model_dump(exclude_none=True, exclude={"ServiceId", "WorkspaceId"}))
    return "update of " + ", ".join(fields)


@action("wedata", DeleteMLModelService)
async def delete_service(ctx: Context, req: DeleteMLModelService) -> dict:
    core = ctx.core
    service = core.service_in(ctx.workspace, req.ServiceId)
    await remove_service(ctx, service)
    return {"Data": {"ServiceId": service.id}}


async def remove_service(ctx: Context, service: ServiceRecord) -> None:
    """Take the service out of routing, stop its replicas (draining), then forget it."""
    core = ctx.core
    core.store.update_service(service.id, status="Deleting")
    core.lifecycle.publish_group(service.group_id)
    await core.lifecycle.remove(service.id)
    with core.store.transaction():
        core.store.delete_service(service.id)
        remaining = core.store.services(service.group_id)
        if len(remaining) == 1 and remaining[0].weight == 0:
            core.store.update_service(remaining[0].id, weight=100)
        core.store.touch_group(service.group_id)
    core.lifecycle.publish_group(service.group_id)


@action("wedata", GetMLModelService)
async def get_service(ctx: Context, req: GetMLModelService) -> dict:
    service = ctx.core.service_in(ctx.workspace, req.ServiceId)
    return {"Data": service_detail(ctx.core, service, ctx.core.store.group(service.group_id))}


FILTERABLE = ("ServiceGroupId", "ServiceGroupName", "ServiceId", "ServiceName", "Status")


@action("wedata", ListMLModelServiceGroups)
async def list_groups(ctx: Context, req: ListMLModelServiceGroups) -> dict:
    filters = [(f.Name, set(f.Values), f.Fuzzy, f.Negative) for f in req.Filters]
    for name, *_ in filters:
        if name not in FILTERABLE:
            raise invalid_value("Filters.Name", f"{name!r} is not a filter; use one of {', '.join(FILTERABLE)}")
    if req.ServiceGroupId:
        filters.append(("ServiceGroupId", {req.ServiceGroupId}, False, False))
    groups = [wedata_group(ctx.core, g) for g in ctx.core.store.groups(ctx.workspace)]
    matching = [g for g in groups if all(_matches(g, *f) for f in filters)]
    return {"Data": {
        "TotalCount": len(matching),
        "Groups": matching[req.Offset:req.Offset + req.Limit],
    }}


def _matches(group: dict, name: str, values: set[str], fuzzy: bool, negative: bool) -> bool:
    if name.startswith("ServiceGroup"):
        candidates = [group[name]]
    else:
        candidates = [s[name] for s in group["Services"]]
    hit = any(
        (any(v in c for v in values) if fuzzy else c in values) for c in candidates
    ) if values else True
    return hit != negative
