"""Replica logs (`ListMLServiceLogs`): pod-name wildcards, a time range, a limit, a continuation."""

from __future__ import annotations

import base64
import json
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from ..backend import LogLine
from .context import Context, required
from .times import iso_precise, parse_time


async def list_logs(ctx: Context, req: Any) -> dict:
    required(req.ServiceId, "ServiceId")
    start = parse_time(req.StartTime, "StartTime")
    end = parse_time(req.EndTime, "EndTime")
    if start is not None and end is not None and end < start:
        raise InvalidParameterValue("EndTime", "is before StartTime")
    lines, more = await ctx.backend.logs(
        ctx.workspace,
        req.ServiceId,
        pod_pattern=req.PodName,
        start=start,
        end=end,
        after=_cursor(req.Context),
        limit=req.Limit,
    )
    content = [
        {
            "Id": f"{line.pod_name}:{line.id}",
            "Message": line.msg,
            "PodName": line.pod_name,
            "Timestamp": iso_precise(line.ts),
            "Stream": line.stream,
        }
        for line in lines
    ]
    context = _encode_cursor(lines[-1]) if more and lines else ""
    return {"Data": {"Content": content, "Context": context, "ListOver": not more}}


def _encode_cursor(line: LogLine) -> str:
    raw = json.dumps([line.ts, line.pod_name, line.id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _cursor(context: str | None):
    if not context:
        return None
    try:
        ts, pod, ident = json.loads(base64.urlsafe_b64decode(context.encode()))
        return float(ts), str(pod), int(ident)
    except (ValueError, TypeError):
        raise InvalidParameterValue(
            "Context", "is not a continuation from a previous ListMLServiceLogs reply"
        ) from None
