"""`ListModelServiceEvents`: a service's events (or the workspace's), k8s-style, folded (repeats of
one event are one with a `Count` and its first and last time), filtered and paged.

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

from ..backend import FoldedEvent, ServiceEvent
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
        for e in ctx.backend.folded_events(ctx.workspace, req.ServiceId)
        if (start is None or e.last_time >= start)
        and (end is None or e.first_time <= end)
        and (not req.ResourceName or fnmatch.fnmatchcase(e.first.resource_name, req.ResourceName))
        and _passes(e.first, wanted)
    ]
    if (req.OrderField or "LastTimestamp") == "FirstTimestamp":
        events.sort(key=lambda e: (e.first_time, e.first.event.seq), reverse=(req.Order or "DESC") == "DESC")
    else:
        events.sort(key=lambda e: (e.last_time, e.last_seq), reverse=(req.Order or "DESC") == "DESC")
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


def _event(e: FoldedEvent) -> dict:
    return {
        "Id": f"{e.first.service.id}-e{e.first.event.seq}",
        "Message": e.message,
        "FirstTimestamp": _rfc3339(e.first_time),
        "LastTimestamp": _rfc3339(e.last_time),
        "Count": e.count,
        "Type": str(e.first.event.type),
        "ResourceKind": e.first.resource_kind,
        "ResourceName": e.first.resource_name,
    }


def _rfc3339(ts: float) -> str:
    # As the published example: `2022-01-10T19:22:04+08:00`, the server's local time and offset.
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
