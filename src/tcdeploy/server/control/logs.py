"""Replica logs (`ListMLServiceLogs`): pod-name wildcards, a time range, a limit, a continuation."""
from __future__ import annotations

import base64
import fnmatch
import json
from datetime import datetime

from ...protocol.actions import ListMLServiceLogs
from ...protocol.errors import invalid_value
from ..runtime import pod_log_names, read_logs
from .actions import Context, action


@action("wedata", ListMLServiceLogs)
async def list_logs(ctx: Context, req: ListMLServiceLogs) -> dict:
    service = ctx.core.service_in(ctx.workspace, req.ServiceId)
    start = parse_time(req.StartTime, "StartTime")
    end = parse_time(req.EndTime, "EndTime")
    if start is not None and end is not None and end < start:
        raise invalid_value("EndTime", "is before StartTime")
    after = _cursor(req.Context)
    prefix = "ms-" + service.id.split("-", 1)[-1] + "-"
    pattern = req.PodName or "*"
    pods = [p for p in pod_log_names(ctx.core.settings.data_dir)
            if p.startswith(prefix) and fnmatch.fnmatchcase(p, pattern)]
    lines, more = read_logs(
        ctx.core.settings.data_dir, pods, start=start, end=end, after=after, limit=req.Limit
    )
    content = [
        {"Id": f"{line.pod_name}:{line.id}", "Message": line.msg, "PodName": line.pod_name,
         "Timestamp": iso_precise(line.ts), "Stream": line.stream}
        for line in lines
    ]
    context = _encode_cursor(lines[-1]) if more and lines else ""
    return {"Data": {"Content": content, "Context": context, "ListOver": not more}}


def iso_precise(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def parse_time(value: str | None, field: str) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_value(field, f"{value!r} is not an ISO-8601 time like 2026-01-10T12:15:03+08:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()


def _encode_cursor(line) -> str:
    raw = json.dumps([line.ts, line.pod_name, line.id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _cursor(context: str | None):
    if not context:
        return None
    try:
        ts, pod, ident = json.loads(base64.urlsafe_b64decode(context.encode()))
        return float(ts), str(pod), int(ident)
    except (ValueError, TypeError):
        raise invalid_value("Context", "is not a continuation from a previous ListMLServiceLogs reply") from None
