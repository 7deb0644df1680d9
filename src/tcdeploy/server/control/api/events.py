"""`ListModelServiceEvents`: a service's events (or the workspace's), k8s-style, filtered and paged.

Filters as the schema names them: `ResourceKind` (`Pod`, `Deployment`, … compared without case) and
`Type` (`Normal` or `Warning`); `ResourceName` is a glob (`ms-cp6rgw9r-1*`). Where the schema states
no default, TI-ONE's `DescribeEvents` gives it: newest first, 100 a page.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.states import EventType

from ..backend import ServiceEvent
from .context import Context
from .times import parse_time

FILTERS = ("ResourceKind", "Type")
ORDERS = ("ASC", "DESC")
ORDER_FIELDS = ("FirstTimestamp", "LastTimestamp")
SERVICES = ("INFER",)
DEFAULT_LIMIT = 100


async def list_events(ctx: Context, req: Any) -> dict:
    _check(req)
    start = parse_time(req.StartTime, "StartTime")
    end = parse_time(req.EndTime, "EndTime")
    if start is not None and end is not None and end < start:
        raise InvalidParameterValue("EndTime", "is before StartTime")
    wanted = {f.Name: {v.lower() for v in f.Values or ()} for f in req.Filters or ()}
    events = [
        e
        for e in ctx.backend.service_events(ctx.workspace, req.ServiceId)
        if (start is None or e.event.time >= start)
        and (end is None or e.event.time <= end)
        and (not req.ResourceName or fnmatch.fnmatchcase(e.resource_name, req.ResourceName))
        and _passes(e, wanted)
    ]
    events.sort(key=lambda e: (e.event.time, e.event.seq), reverse=(req.Order or "DESC") == "DESC")
    offset = req.Offset or 0
    limit = DEFAULT_LIMIT if req.Limit is None else req.Limit
    return {"Data": {"TotalCount": len(events), "Events": [_event(e) for e in events[offset : offset + limit]]}}


def _check(req: Any) -> None:
    for i, f in enumerate(req.Filters or ()):
        if f.Name not in FILTERS:
            raise InvalidParameterValue(
                f"Filters.{i}.Name", f"{f.Name!r} is not a filter; use one of {', '.join(FILTERS)}"
            )
        if f.Name == "Type":
            for value in f.Values or ():
                if value not in tuple(EventType):
                    raise InvalidParameterValue(
                        f"Filters.{i}.Values", f"{value!r} is not an event type; use Normal or Warning"
                    )
    _one_of(req.Order, ORDERS, "Order")
    _one_of(req.OrderField, ORDER_FIELDS, "OrderField")
    _one_of(req.Service, SERVICES, "Service")


def _one_of(value: str | None, allowed: tuple[str, ...], field: str) -> None:
    if value and value not in allowed:
        raise InvalidParameterValue(field, f"must be one of {', '.join(allowed)}")


def _passes(e: ServiceEvent, wanted: dict[str, set[str]]) -> bool:
    kinds, types = wanted.get("ResourceKind"), wanted.get("Type")
    return (not kinds or e.resource_kind.lower() in kinds) and (not types or e.event.type.lower() in types)


def _event(e: ServiceEvent) -> dict:
    when = _rfc3339(e.event.time)
    message = f"{e.event.reason}: {e.event.message}" if e.event.reason else e.event.message
    return {
        "Id": f"{e.service.id}-e{e.event.seq}",
        "Message": message,
        "FirstTimestamp": when,
        "LastTimestamp": when,
        "Count": 1,
        "Type": str(e.event.type),
        "ResourceKind": e.resource_kind,
        "ResourceName": e.resource_name,
    }


def _rfc3339(ts: float) -> str:
    # As the published example: `2022-01-10T19:22:04+08:00`, the server's local time and offset.
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
