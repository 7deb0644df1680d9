"""Services through TI-ONE's actions: create, modify, describe, delete, and their events and logs.

The same backend calls as the wedata handlers, with the settings stored under the names the two
APIs share, so a service made through one API is seen and changed through the other.
"""

from __future__ import annotations

import time
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue, MissingParameter
from tcdeploy.protocol.schema import WireModel
from tcdeploy.protocol.urls import validate_model_uri

from ..backend import FoldedEvent, ModelRef
from .context import Context, required
from .logs import continuation, log_line, read_cursor
from .times import parse_time
from .tione_views import tione_service, tione_time

# Request members that are not settings of the service: the handler reads them itself.
NOT_SETTINGS = {
    "TiProjectId",
    "ServiceGroupId",
    "ServiceGroupName",
    "ServiceId",
    "ModelInfo",
    "AuthorizationEnable",
    "NewVersion",
    "ServiceAction",
    "TargetProjectId",
}
# TI-ONE's name → the name the setting is stored under (wedata's, where the two differ).
STORED_AS = {"ServiceEIP": "ServiceEIPInfo"}
NEW_VERSIONS_TRIED = 16
DEFAULT_EVENT_WINDOW = 86_400  # TI-ONE: events of the last day unless StartTime says otherwise


def settings(req: WireModel) -> dict[str, Any]:
    """The service settings a create or modify request gives, under their stored names."""
    given = req.model_dump(exclude_none=True, exclude=NOT_SETTINGS)
    return {STORED_AS.get(name, name): value for name, value in given.items()}


def model_settings(info: WireModel) -> tuple[ModelRef, dict[str, Any]]:
    """TI-ONE's `ModelInfo` as the model to load and the settings that record it.

    `CosPathInfo.Paths[0]` names the model's files (an MLflow URI or a local path); else
    `ModelName` and `ModelVersion` name a registered model (`v3`, TI-ONE's way, reads as `3`)."""
    paths = info.CosPathInfo.Paths if info.CosPathInfo and info.CosPathInfo.Paths else None
    version = info.ModelVersion
    if version and version[:1] in "vV" and version[1:].isdigit():
        version = version[1:]
    if paths:
        try:
            ref = ModelRef(path=validate_model_uri(paths[0]))
        except ValueError as exc:
            raise InvalidParameterValue("ModelInfo.CosPathInfo.Paths.0", str(exc)) from None
    elif info.ModelName and version:
        ref = ModelRef(name=info.ModelName, version=version)
    else:
        raise MissingParameter("ModelInfo", "CosPathInfo.Paths, or ModelName and ModelVersion, is required")
    ml = {"Id": info.ModelId, "Name": ref.name or info.ModelName, "Version": version, "ModelPath": ref.path}
    stored = {
        "ModelInfo": info.model_dump(exclude_none=True),
        "MlModelInfo": {k: v for k, v in ml.items() if v},
    }
    if info.ModelSource:
        stored["ModelSource"] = info.ModelSource
    return ref, stored


def service_reply(ctx: Context, service_id: str) -> dict:
    backend = ctx.backend
    service = backend.service(ctx.workspace, service_id)
    latest = max(s.version for s in backend.services(service.group_id))
    return {"Service": tione_service(ctx, backend.snapshot(service), latest)}


async def create_service(ctx: Context, req: Any) -> dict:
    instance = required(req.InstanceType, "InstanceType")
    model, recorded = model_settings(required(req.ModelInfo, "ModelInfo"))
    if req.NewVersion:
        required(req.ServiceGroupId, "ServiceGroupId")
    spec = {
        **settings(req),
        **recorded,
        "InstanceType": instance,
        "Replicas": 1 if req.Replicas is None else req.Replicas,
    }
    if req.ServiceGroupId:
        name = _version_name(ctx, req.ServiceGroupId)
    else:
        name = required(req.ServiceGroupName, "ServiceGroupName")
    service = await ctx.backend.create_service(
        ctx.workspace,
        name,
        spec=spec,
        model=model,
        group_ref=req.ServiceGroupId,
        authorization=bool(req.AuthorizationEnable),
        field="",
    )
    return service_reply(ctx, service.id)


def _version_name(ctx: Context, group_ref: str) -> str:
    """A name for a new version of a group (TI-ONE's services have none of their own; ours do):
    `<group>-v<n>`, the first n from the group's next version on that is free."""
    group = ctx.backend.group(ctx.workspace, group_ref)
    first = len(ctx.backend.services(group.id)) + 1
    for n in range(first, first + NEW_VERSIONS_TRIED):
        name = f"{group.name}-v{n}"
        if not ctx.backend.name_taken(ctx.workspace, name):
            return name
    raise InvalidParameterValue("ServiceGroupId", f"no free name for a new version of {group.name!r}")


async def modify_service(ctx: Context, req: Any) -> dict:
    changes = settings(req)
    model = None
    if req.ModelInfo is not None:
        model, recorded = model_settings(req.ModelInfo)
        changes.update(recorded)
    service = await ctx.backend.update_service(
        ctx.workspace,
        required(req.ServiceId, "ServiceId"),
        action=req.ServiceAction or None,
        replicas=req.Replicas,
        changes=changes,
        model=model,
    )
    return service_reply(ctx, service.id)


async def describe_service(ctx: Context, req: Any) -> dict:
    return service_reply(ctx, required(req.ServiceId, "ServiceId"))


async def delete_service(ctx: Context, req: Any) -> dict:
    await ctx.backend.remove_service(ctx.workspace, required(req.ServiceId, "ServiceId"))
    return {}


# ---- events and logs ---------------------------------------------------------------------------

EVENT_FILTERS = ("ResourceKind", "Type")


def _only_infer(service: str | None) -> None:
    # TI-ONE's events and logs serve training tasks, notebooks and batch jobs too; here only
    # online services (INFER) exist.
    if service not in (None, "", "INFER"):
        raise InvalidParameterValue("Service", f"{service!r}: this server has online services (INFER) only")


def _window(req: Any, default_span: float | None) -> tuple[float | None, float | None]:
    start = parse_time(req.StartTime, "StartTime")
    end = parse_time(req.EndTime, "EndTime")
    if start is not None and end is not None and end < start:
        raise InvalidParameterValue("EndTime", "is before StartTime")
    if start is None and default_span is not None:
        start = (end or time.time()) - default_span
    return start, end


async def describe_events(ctx: Context, req: Any) -> dict:
    _only_infer(req.Service)
    start, end = _window(req, DEFAULT_EVENT_WINDOW)
    wanted = {}
    for i, f in enumerate(req.Filters or ()):
        if f.Name not in EVENT_FILTERS:
            raise InvalidParameterValue(f"Filters.{i}.Name", f"{f.Name!r}: use one of {', '.join(EVENT_FILTERS)}")
        wanted[f.Name] = set(f.Values or ())
    events = [
        e
        for e in (_folded(f) for f in ctx.backend.folded_events(ctx.workspace, req.ServiceId or None))
        if e["LastTime"] >= start
        and (end is None or e["FirstTime"] <= end)
        and all(e[name] in values for name, values in wanted.items() if values)
    ]
    key = "FirstTime" if req.OrderField == "FirstTimestamp" else "LastTime"
    events.sort(key=lambda e: e[key], reverse=(req.Order or "DESC") == "DESC")
    offset, limit = req.Offset or 0, req.Limit or 100
    return {"Events": [_event_view(e) for e in events[offset : offset + limit]], "TotalCount": len(events)}


def _folded(e: FoldedEvent) -> dict:
    """A folded event with the members the filters and the order read."""
    return {
        "Id": f"{e.first.service.id}.{e.first.event.seq}",
        "ResourceKind": e.first.resource_kind,
        "ResourceName": e.first.resource_name,
        "Type": str(e.first.event.type),
        "Message": e.message,
        "FirstTime": e.first_time,
        "LastTime": e.last_time,
        "Count": e.count,
    }


def _event_view(e: dict) -> dict:
    """An event as the SDK's `Event`."""
    return {
        "Id": e["Id"],
        "Message": e["Message"],
        "FirstTimestamp": tione_time(e["FirstTime"]),
        "LastTimestamp": tione_time(e["LastTime"]),
        "Count": e["Count"],
        "Type": e["Type"],
        "ResourceKind": e["ResourceKind"],
        "ResourceName": e["ResourceName"],
    }


LOG_FILTERS = ("Key",)


async def describe_logs(ctx: Context, req: Any) -> dict:
    """Lines of a service's replicas (of every service, without `ServiceId`), newest first unless
    `Order` is ASC, as TI-ONE's default is. `Filters` `Key` values must all appear in a line."""
    _only_infer(req.Service)
    start, end = _window(req, None)
    keys = []
    for i, f in enumerate(req.Filters or ()):
        if f.Name not in LOG_FILTERS:
            raise InvalidParameterValue(f"Filters.{i}.Name", f"{f.Name!r}: use one of {', '.join(LOG_FILTERS)}")
        keys.extend(f.Values or ())
    order = req.Order or "DESC"
    lines, more = await ctx.backend.logs(
        ctx.workspace, req.ServiceId or None, pod_pattern=req.PodName, start=start, end=end,
        cursor=read_cursor(req.Context, order), keyword=keys[0] if keys else None, newest_first=order == "DESC",
        offset=req.Offset or 0, limit=req.Limit or 100,
    )  # fmt: skip
    # The continuation is the last line read, shown or not, so the next page starts after it.
    context = continuation(lines[-1], order) if more and lines else ""
    content = [
        log_line(line)
        for line in lines
        if all(k in line.msg for k in keys[1:]) and (not req.LogStream or line.stream == req.LogStream)
    ]
    return {"Context": context, "Content": content}
