"""Replica logs (`ListMLServiceLogs`): pod-name wildcards, a time range, a keyword, either order,
an offset, a limit, a continuation."""

from __future__ import annotations

import base64
import json
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from ..backend import LogLine
from .context import Context
from .times import parse_time, rfc3339

DEFAULT_LIMIT = 100
ORDER_FIELDS = ("Timestamp",)


async def list_logs(ctx: Context, req: Any) -> dict:
    start = parse_time(req.StartTime, "StartTime")
    end = parse_time(req.EndTime, "EndTime")
    if start is not None and end is not None and end < start:
        raise InvalidParameterValue("EndTime", "is before StartTime")
    if req.Service not in (None, "", "INFER"):
        raise InvalidParameterValue("Service", "must be INFER (online services)")
    if req.OrderField and req.OrderField not in ORDER_FIELDS:
        raise InvalidParameterValue("OrderField", f"must be one of {', '.join(ORDER_FIELDS)}")
    order = (req.Order or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidParameterValue("Order", "must be ASC or DESC")
    cursor = read_cursor(req.Context, order)
    lines, more = await ctx.backend.logs(
        ctx.workspace, req.ServiceId or None, pod_pattern=req.PodName, start=start, end=end, cursor=cursor,
        keyword=req.Key or None, newest_first=order == "DESC", offset=req.Offset or 0,
        limit=req.Limit or DEFAULT_LIMIT,
    )  # fmt: skip
    # An empty Context says there is nothing more, as the real API does.
    context = continuation(lines[-1], order) if more and lines else ""
    return {"Data": {"Content": [log_line(line) for line in lines], "Context": context}}


def log_line(line: LogLine) -> dict:
    """A log line as both APIs show it (`MlModelServiceLogIdentity`, TI-ONE's `LogIdentity`)."""
    return {
        "Id": f"{line.pod_name}:{line.id}",
        "Message": line.msg,
        "PodName": line.pod_name,
        "Timestamp": rfc3339(line.ts),
    }


def continuation(line: LogLine, order: str) -> str:
    """The opaque `Context` that continues a listing after `line`, in the same order."""
    raw = json.dumps([line.ts, line.pod_name, line.id, order]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def read_cursor(context: str | None, order: str) -> tuple[float, str, int] | None:
    """The line a `Context` continues after; refused unless it came from a listing in `order`."""
    if not context:
        return None
    try:
        ts, pod, ident, given_order = json.loads(base64.urlsafe_b64decode(context.encode()))
        cursor = float(ts), str(pod), int(ident)
    except (ValueError, TypeError):
        raise InvalidParameterValue(
            "Context", "is not a continuation from a previous ListMLServiceLogs reply"
        ) from None
    if given_order != order:
        raise InvalidParameterValue("Context", f"continues an {given_order} listing; ask with Order {given_order}")
    return cursor
