"""Pages that watch a group: monitoring charts, events, logs, online debugging and the inference
table. The figures, events and lines are the API's own replies (`GetModelServiceMonitorData`,
`ListModelServiceEvents`, `ListMLServiceLogs`, `ModelServiceInterfaceCallTest`)."""

from __future__ import annotations

import io
import json
import shlex
import time
from collections.abc import Callable
from datetime import datetime, timezone

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tcdeploy.protocol.errors import InvalidParameterValue

from .pages import Page, whole_number

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "15d": 15 * 86400}
PERIODS = (60, 300)
LOG_LINES = 200
TABLE_ROWS = 100
# (chart title, unit, [(metric, label, divide by the period)]) — what the monitoring page draws.
CHARTS = [
    ("QPS", "req/s", [("Requests", "QPS", True)]),
    ("QPS limited (429)", "req/s", [("Limited", "limited", True)]),
    ("Concurrency", "requests", [("Inflight", "in flight", False)]),
    ("Latency", "ms", [("LatencyP50", "p50", False), ("LatencyP99", "p99", False)]),
    ("Errors", "requests", [("Errors", "errors", False)]),
    ("Network", "bytes/s", [("BytesIn", "in", True), ("BytesOut", "out", True)]),
    ("CPU per replica", "%", [("InstanceCpuUtil", "", False)]),
    ("Memory per replica", "%", [("InstanceMemUtil", "", False)]),
    ("Instances", "replicas", [("Replicas", "instances", False), ("ReadyReplicas", "ready", False)]),
]


def routes(p: Callable) -> list[Route]:
    g = "/w/{ws}/groups/{group_id}"
    return [
        Route(g + "/monitor", p(monitor_page)),
        Route(g + "/monitor.json", p(monitor_data)),
        Route(g + "/events", p(events_page)),
        Route(g + "/logs", p(logs_page)),
        Route(g + "/logs/lines", p(log_lines)),
        Route(g + "/debug", p(debug_page)),
        Route(g + "/debug", p(debug_send), methods=["POST"]),
        Route(g + "/table", p(table_page)),
        Route(g + "/table.{fmt:str}", p(table_download)),
    ]


async def _group(page: Page) -> dict:
    return await page.data("GetMLModelServiceGroup", {"ServiceGroupId": page.path["group_id"]})


def _chosen(group: dict, wanted: str | None) -> list[dict]:
    """The group's versions a page shows: the one asked for, else all."""
    services = group["Services"]
    if wanted:
        services = [s for s in services if s["ServiceId"] == wanted]
        if not services:
            raise InvalidParameterValue("service", f"{wanted!r} is not a version of group {group['ServiceGroupId']}")
    return services


# ---- monitoring -------------------------------------------------------------------------------


async def monitor_page(page: Page) -> Response:
    group = await _group(page)
    return page.render(
        "monitor.html", title=f"Monitoring · {group['ServiceGroupName']}", group=group, tab="monitor",
        service=page.query.get("service", ""), ranges=RANGES, periods=PERIODS,
    )  # fmt: skip


async def monitor_data(page: Page) -> Response:
    """Every chart's series for one version (or each version of the group) over the window."""
    group = await _group(page)
    start, end = _window(page)
    period = whole_number(page.query.get("period"), 60, "period")
    if period not in PERIODS:
        raise InvalidParameterValue("period", f"must be one of {', '.join(map(str, PERIODS))} seconds")
    window = {"StartTime": _iso(start), "EndTime": _iso(end), "Period": period}
    charts = []
    for title, unit, metrics in CHARTS:
        series = []
        for service in _chosen(group, page.query.get("service")):
            for metric, label, per_second in metrics:
                data = await page.data(
                    "GetModelServiceMonitorData", {"ServiceId": service["ServiceId"], "MetricName": metric, **window}
                )
                for point in data["DataPoints"]:
                    series.append(_series(point, service, label, period if per_second else 1))
        charts.append({"title": title, "unit": unit, "series": series})
    return JSONResponse({"start": start, "end": end, "period": period, "charts": charts})


def _series(point: dict, service: dict, label: str, divisor: int) -> dict:
    pod = next((d["Value"] for d in point["Dimensions"] if d["Name"] == "PodName"), None)
    name = pod or f"v{service['Version']} {label}".strip()
    return {
        "label": name,
        "t": [int(t) for t in point["Timestamps"]],
        "v": [round(v / divisor, 4) for v in point["Values"]],
    }


def _window(page: Page) -> tuple[float, float]:
    """(start, end) epoch seconds from `range` (1h, 24h, 7d, 15d) or `start`/`end` (custom)."""
    if page.query.get("range", "1h") == "custom":
        start, end = _local_time(page.query.get("start"), "start"), _local_time(page.query.get("end"), "end")
        if end <= start:
            raise InvalidParameterValue("end", "must be after start")
        return start, end
    length = RANGES.get(page.query.get("range", "1h"))
    if length is None:
        raise InvalidParameterValue("range", f"must be one of {', '.join(RANGES)} or custom")
    end = time.time()
    return end - length, end


def _local_time(value: str | None, field: str) -> float:
    try:
        return datetime.fromisoformat(value or "").astimezone().timestamp()
    except ValueError:
        raise InvalidParameterValue(field, f"{value!r} is not a time like 2026-01-10T12:15") from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


# ---- events -----------------------------------------------------------------------------------


async def events_page(page: Page) -> Response:
    group = await _group(page)
    rows = []
    for service in _chosen(group, page.query.get("service")):
        data = await page.data("ListModelServiceEvents", {"ServiceId": service["ServiceId"], "Limit": 500})
        rows += [{**e, "Service": service} for e in data["Events"] or []]
    rows.sort(key=lambda e: e["LastTimestamp"], reverse=True)
    return page.render(
        "events.html", title=f"Events · {group['ServiceGroupName']}", group=group, tab="events", events=rows,
        service=page.query.get("service", ""),
    )  # fmt: skip


# ---- logs -------------------------------------------------------------------------------------


async def logs_page(page: Page) -> Response:
    group = await _group(page)
    pods = [p["Name"] for s in _chosen(group, page.query.get("service")) for p in s["PodInfos"]]
    lines = await _lines(page, group)
    return page.render(
        "logs.html", title=f"Logs · {group['ServiceGroupName']}", group=group, tab="logs", pods=pods, lines=lines,
        q=page.query, ranges=RANGES,
    )  # fmt: skip


async def log_lines(page: Page) -> Response:
    """The log box alone: what htmx swaps in on search and on each auto refresh."""
    return page.render("_log_lines.html", lines=await _lines(page, await _group(page)))


async def _lines(page: Page, group: dict) -> list[dict]:
    """The newest lines matching the filters, oldest first, over the versions asked for."""
    start, end = _window(page)
    params = {"StartTime": _iso(start), "EndTime": _iso(end), "Order": "DESC", "Limit": LOG_LINES}
    if page.query.get("key"):
        params["Key"] = page.query["key"]
    if page.query.get("pod"):
        params["PodName"] = page.query["pod"]
    lines = []
    for service in _chosen(group, page.query.get("service")):
        data = await page.data("ListMLServiceLogs", {**params, "ServiceId": service["ServiceId"]})
        lines += data["Content"] or []
    lines.sort(key=lambda line: line["Timestamp"])
    return lines[-LOG_LINES:]


# ---- online debugging -------------------------------------------------------------------------


async def debug_page(page: Page, result: dict | None = None) -> Response:
    group = await _group(page)
    call = await page.data("GetModelServiceCallInfo", {"ServiceGroupId": group["ServiceGroupId"]})
    info = call["ServiceCallInfo"]
    body = page.form.get("body") or await _example_body(page, group)
    token = page.form.get("token") or info.get("AuthToken") or ""
    return page.render(
        "debug.html", title=f"Online debugging · {group['ServiceGroupName']}", group=group, tab="debug",
        url=info["InternetEndpoint"], body=body, token=token, auth=info["AuthorizationEnable"], result=result,
        curl=_curl(info["InternetEndpoint"], body, token if info["AuthorizationEnable"] else ""),
    )  # fmt: skip


async def debug_send(page: Page) -> Response:
    group_id = page.path["group_id"]
    body = page.form.get("body", "")
    params = {"ServiceId": group_id, "ServiceGroupId": group_id, "RelativeUrl": "/predict", "CurlData": body}
    if page.form.get("token"):
        params["AuthTokenValue"] = page.form["token"]
    started = time.perf_counter()
    data = await page.data("ModelServiceInterfaceCallTest", params)
    latency_ms = (time.perf_counter() - started) * 1000
    raw = json.loads(data["CurlResponseRaw"])
    status, reply = raw.pop("status"), raw.pop("body", "")
    try:
        reply = json.dumps(json.loads(reply), indent=2, ensure_ascii=False)
    except ValueError:
        pass  # not JSON: shown as it came
    return await debug_page(page, {"status": status, "headers": raw, "body": reply, "latency_ms": latency_ms})


async def _example_body(page: Page, group: dict) -> str:
    """The WeData form (`client_request_id` + `dataframe_split`), one row of the model's
    signature's columns filled with zeros of their types (an empty frame if it has none)."""
    columns: list[dict] = []
    services = group["Services"]
    if services:
        mlmodel = await page.console.backend.registry.mlmodel(services[0]["MlModelInfo"]["ModelPath"]) or {}
        try:
            columns = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
        except ValueError:
            columns = []
    names = [c.get("name", f"c{i}") for i, c in enumerate(columns) if isinstance(c, dict)]
    row = [_zero(c.get("type")) for c in columns if isinstance(c, dict)]
    # One line per member and per row, as the WeData form's examples are written.
    data = json.dumps([row] if row else [])
    return (
        f'{{\n  "client_request_id": "console-1",\n  "dataframe_split": {{\n'
        f'    "columns": {json.dumps(names, ensure_ascii=False)},\n    "data": {data}\n  }}\n}}'
    )


def _zero(kind: str | None):
    return {"string": "", "boolean": False, "long": 0, "integer": 0}.get(kind or "", 0.0)


def _curl(url: str, body: str, token: str) -> str:
    try:
        compact = json.dumps(json.loads(body), separators=(",", ":"))
    except ValueError:
        compact = body
    auth = f" \\\n  -H {shlex.quote('Authorization: ' + token)}" if token else ""
    return f"curl -X POST {shlex.quote(url)}{auth} \\\n  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(compact)}"


# ---- inference table --------------------------------------------------------------------------


async def table_page(page: Page) -> Response:
    group = await _group(page)
    frame, total = await page.console.backend.latest_inference_rows(
        page.ws, group["ServiceGroupId"], TABLE_ROWS, version=page.query.get("version") or None, status=_status(page)
    )
    return page.render(
        "table.html", title=f"Inference table · {group['ServiceGroupName']}", group=group, tab="table",
        rows=frame.to_dict(orient="records"), total=total, q=page.query,
    )  # fmt: skip


async def table_download(page: Page) -> Response:
    fmt = page.path["fmt"]
    if fmt not in ("csv", "parquet"):
        raise InvalidParameterValue("format", "must be csv or parquet")
    group_id = page.path["group_id"]
    frame = await page.console.backend.inference_rows(
        page.ws, group_id, version=page.query.get("version") or None, status=_status(page)
    )
    out = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    disposition = f'attachment; filename="inference-{group_id}.{fmt}"'
    return Response(out.getvalue(), media_type=media, headers={"Content-Disposition": disposition})


def _status(page: Page) -> range | None:
    """The status codes the table's `status` filter keeps: ok (below 400), error, or one code."""
    status = page.query.get("status", "")
    if status == "ok":
        return range(0, 400)
    if status == "error":
        return range(400, 1000)
    if status:
        code = whole_number(status, 0, "status")
        return range(code, code + 1)
    return None
