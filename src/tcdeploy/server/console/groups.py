"""Pages that manage services: the group list, the create form, a group (its versions, traffic
split and tokens) and a version (its settings and instances). Each change is one API action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tcdeploy.protocol.errors import ApiError, InvalidParameterValue
from tcdeploy.protocol.states import WEDATA_WORDS, ServiceStatus

from .pages import Page, whole_number

PAGE_SIZE = 50
MODELS_SHOWN = 100
LIFECYCLE = {"start": "START", "stop": "STOP"}
GROUP_VERBS = (*LIFECYCLE, "delete")
SERVICE_VERBS = (*GROUP_VERBS, "replicas")
# A group page with a version in one of these states refreshes its versions until none is.
IN_MOTION = frozenset(
    WEDATA_WORDS[s]
    for s in (ServiceStatus.CREATING, ServiceStatus.UPDATING, ServiceStatus.STOPPING, ServiceStatus.DELETING)
)
POLL_SECONDS = 2


def routes(p: Callable) -> list[Route]:
    w = "/w/{ws}"
    g = w + "/groups/{group_id}"
    s = w + "/services/{service_id}"
    return [
        Route(w + "/groups", p(group_list)),
        Route(w + "/groups/new", p(new_form)),
        Route(w + "/groups/new", p(create), methods=["POST"]),
        Route(g, p(group_detail)),
        Route(g + "/weights", p(set_weights), methods=["POST"]),
        Route(g + "/description", p(set_description), methods=["POST"]),
        Route(g + "/auth", p(set_auth), methods=["POST"]),
        Route(g + "/tokens", p(create_token), methods=["POST"]),
        Route(g + "/tokens/delete", p(delete_token), methods=["POST"]),
        *(Route(f"{g}/{verb}", p(group_lifecycle), methods=["POST"]) for verb in GROUP_VERBS),
        Route(s, p(service_detail)),
        Route(s + "/update", p(update_service), methods=["POST"]),
        Route(s + "/pods/{pod_name}/restart", p(restart_pod), methods=["POST"]),
        Route(s + "/pods/{pod_name}/page", p(pod_page), methods=["POST"]),
        *(Route(f"{s}/{verb}", p(service_lifecycle), methods=["POST"]) for verb in SERVICE_VERBS),
    ]


# ---- the list ---------------------------------------------------------------------------------


async def group_list(page: Page) -> Response:
    number = whole_number(page.query.get("page"), 1)
    data = await page.data("ListMLModelServiceGroups", {"PageNumber": number, "PageSize": PAGE_SIZE})
    return page.render(
        "groups.html", title="Service groups", groups=data["Rows"], total=data["TotalCount"],
        page_number=number, pages=data["TotalPageNumber"], flash=page.query.get("flash"),
    )  # fmt: skip


async def group_lifecycle(page: Page) -> Response:
    """Start, stop or delete a whole group from the list."""
    group_id, verb = page.path["group_id"], page.verb
    if verb == "delete":
        await page.data("DeleteMLModelServiceGroup", {"ServiceGroupId": group_id})
        return page.redirect("/groups", f"Deleted service group {group_id} and its versions.")
    group = await page.data("GetMLModelServiceGroup", {"ServiceGroupId": group_id})
    for service in group["Services"]:
        await page.data("UpdateMLModelService", {"ServiceId": service["ServiceId"], "ServiceAction": LIFECYCLE[verb]})
    return page.redirect(_back(page, "/groups"), f"{verb.title()} requested for {group['ServiceGroupName']}.")


# ---- create -----------------------------------------------------------------------------------


async def new_form(page: Page, error: ApiError | None = None, status: int = 200) -> Response:
    group_id = page.query.get("group") or page.form.get("group") or ""
    group = await page.data("GetMLModelServiceGroup", {"ServiceGroupId": group_id}) if group_id else None
    specs = (await page.data("GetBillingSpecs", {"ChargeType": "INFERENCE"}))["SpecInfos"]
    return page.render(
        "new.html", status, title="Add a version" if group else "New model service", group=group,
        models=await _registered_models(page), specs=specs, form=page.form, error=error,
    )  # fmt: skip


async def create(page: Page) -> Response:
    try:
        params = _create_params(page.form)
        data = await page.data("CreateMLModelServices", params)
    except ApiError as exc:
        return await new_form(page, exc, 400)
    return page.redirect(f"/groups/{data['ServiceGroupId']}", f"Creating {params['ServiceName']}.")


def _create_params(form: dict[str, str]) -> dict[str, Any]:
    """The create form as `CreateMLModelServices`' members."""
    name, _, version = form.get("model", "").rpartition("/")
    model: dict[str, Any] = {"Name": name, "Version": version} if name else {}
    if form.get("model_path", "").strip():
        model = {"ModelPath": form["model_path"].strip()}
    service: dict[str, Any] = {
        "InstanceType": form.get("instance_type", ""),
        "Replicas": whole_number(form.get("replicas"), 1, "Replicas"),
        "MlModelInfo": model,
    }
    if form.get("rps_limit", "").strip():
        service["ServiceLimit"] = _service_limit(form["rps_limit"], None)
    params: dict[str, Any] = {
        "ServiceName": form.get("name", "").strip(),
        "ServiceDescription": form.get("description", ""),
        "AuthorizationEnable": "auth" in form,
        "InferenceTablePushEnable": "inference_table" in form,
        "Services": [service],
    }
    if form.get("group"):
        params["ServiceGroupId"] = form["group"]
    return params


def _service_limit(rps: str, current: dict | None) -> dict[str, Any]:
    """`ServiceLimit` with the form's requests-per-second limit (empty: none); the concurrency
    limit, which the form does not show, is kept as it was."""
    current = current or {}
    return {
        "EnableInstanceRpsLimit": bool(rps.strip()),
        "InstanceRpsLimit": whole_number(rps, 0, "InstanceRpsLimit"),
        "EnableInstanceReqLimit": bool(current.get("EnableInstanceReqLimit")),
        "InstanceReqLimit": int(current.get("InstanceReqLimit") or 0),
    }


async def _registered_models(page: Page) -> list[dict]:
    """Registered models of the workspace with their versions, newest first, for the form."""
    models = (await page.data("SearchModels", {"MaxResults": MODELS_SHOWN}))["Items"] or []
    shown = []
    for model in models:
        # A bare registered name has no catalog or schema: the action looks it up by name alone.
        where = {"CatalogName": model["CatalogName"] or "-", "SchemaName": model["SchemaName"] or "-"}
        versions = (await page.data("ListModelVersions", {**where, "ModelName": model["Name"]}))["Items"] or []
        shown.append({"Name": model["Id"], "Versions": [v["Version"] for v in reversed(versions)]})
    return shown


# ---- a group ----------------------------------------------------------------------------------


async def group_detail(page: Page) -> Response:
    group = await page.data("GetMLModelServiceGroup", {"ServiceGroupId": page.path["group_id"]})
    call = await page.data("GetModelServiceCallInfo", {"ServiceGroupId": group["ServiceGroupId"]})
    return page.render(
        "group.html", title=group["ServiceGroupName"], group=group, tab=page.query.get("tab", "versions"),
        url=call["ServiceCallInfo"]["InternetEndpoint"], flash=page.query.get("flash"),
        poll=POLL_SECONDS if any(s["Status"] in IN_MOTION for s in group["Services"]) else None,
    )  # fmt: skip


async def set_weights(page: Page) -> Response:
    group_id = page.path["group_id"]
    entries = [
        {"ServiceId": sid, "Weight": whole_number(weight, 0, f"weight of {sid}")}
        for sid, weight in zip(page.form_lists.get("service", []), page.form_lists.get("weight", []))
    ]
    if sum(e["Weight"] for e in entries) != 100:
        raise InvalidParameterValue("Weight", "the weights must add up to 100")
    await page.data("UpdateServiceGroupWeights", {"ServiceGroupId": group_id, "WeightEntries": entries})
    split = " / ".join(str(e["Weight"]) for e in entries)
    return page.redirect(f"/groups/{group_id}?tab=traffic", f"Traffic split set to {split}.")


async def set_description(page: Page) -> Response:
    group_id = page.path["group_id"]
    await page.data(
        "UpdateModelServiceGroup", {"ServiceGroupId": group_id, "Description": page.form.get("description", "")}
    )
    return page.redirect(f"/groups/{group_id}", "Description saved.")


async def set_auth(page: Page) -> Response:
    group_id = page.path["group_id"]
    on = page.form.get("enable") == "1"
    await page.data("UpdateModelServiceAuthorization", {"ServiceGroupId": group_id, "AuthorizationEnable": on})
    return page.redirect(f"/groups/{group_id}?tab=auth", "Authentication is " + ("on." if on else "off."))


async def create_token(page: Page) -> Response:
    group_id = page.path["group_id"]
    params = {"ServiceGroupId": group_id, "Name": page.form.get("name") or "default"}
    await page.data("CreateModelServiceAuthToken", {**params, "Description": page.form.get("description", "")})
    return page.redirect(f"/groups/{group_id}?tab=auth", f"Token {params['Name']} created.")


async def delete_token(page: Page) -> Response:
    group_id = page.path["group_id"]
    await page.data("DeleteModelServiceAuthToken", {"ServiceGroupId": group_id, "AuthTokenValue": page.form["value"]})
    return page.redirect(f"/groups/{group_id}?tab=auth", "Token deleted.")


# ---- a version --------------------------------------------------------------------------------


async def service_detail(page: Page) -> Response:
    service = await page.data("GetMLModelService", {"ServiceId": page.path["service_id"]})
    usage = await _pod_usage(page, service["ServiceId"])
    specs = (await page.data("GetBillingSpecs", {"ChargeType": "INFERENCE"}))["SpecInfos"]
    return page.render(
        "service.html", title=service["ServiceName"], service=service, usage=usage, specs=specs,
        models=await _registered_models(page), flash=page.query.get("flash"),
    )  # fmt: skip


async def update_service(page: Page) -> Response:
    """The version's settings from its update form: what changed rolls its replicas one by one."""
    service_id, form = page.path["service_id"], page.form
    params: dict[str, Any] = {"ServiceId": service_id, "ServiceDescription": form.get("description", "")}
    if form.get("instance_type"):
        params["InstanceType"] = form["instance_type"]
    name, _, version = form.get("model", "").rpartition("/")
    if name:
        params["MlModelInfo"] = {"Name": name, "Version": version}
    current = await page.data("GetMLModelService", {"ServiceId": service_id})
    params["ServiceLimit"] = _service_limit(form.get("rps_limit", ""), current.get("ServiceLimit"))
    await page.data("UpdateMLModelService", params)
    return page.redirect(f"/services/{service_id}", "Update requested: replicas roll one by one when needed.")


async def _pod_usage(page: Page, service_id: str) -> dict[str, dict[str, float]]:
    """Each pod's CPU and memory now (percent of its instance type), from the monitor action."""
    usage: dict[str, dict[str, float]] = {}
    for metric in ("InstanceCpuUtil", "InstanceMemUtil"):
        data = await page.data("GetModelServiceMonitorData", {"ServiceId": service_id, "MetricName": metric})
        for point in data["DataPoints"]:
            pod = next(d["Value"] for d in point["Dimensions"] if d["Name"] == "PodName")
            if point["Values"]:
                usage.setdefault(pod, {})[metric] = point["Values"][-1]
    return usage


async def service_lifecycle(page: Page) -> Response:
    service_id, verb = page.path["service_id"], page.verb
    service = await page.data("GetMLModelService", {"ServiceId": service_id})
    if verb == "delete":
        await page.data("DeleteMLModelService", {"ServiceId": service_id})
        return page.redirect(f"/groups/{service['ServiceGroupId']}", f"Deleted version {service_id}.")
    if verb == "replicas":
        replicas = whole_number(page.form.get("replicas"), 1, "Replicas")
        await page.data(
            "UpdateMLModelService", {"ServiceId": service_id, "ServiceAction": "SCALE", "Replicas": replicas}
        )
    else:
        await page.data("UpdateMLModelService", {"ServiceId": service_id, "ServiceAction": LIFECYCLE[verb]})
    return page.redirect(_back(page, f"/services/{service_id}"), f"{verb.title()} requested for {service_id}.")


async def restart_pod(page: Page) -> Response:
    service_id, pod = page.path["service_id"], page.path["pod_name"]
    await page.data("RebuildModelServicePod", {"ServiceId": service_id, "PodName": pod})
    return page.redirect(f"/services/{service_id}", f"Restart of {pod} requested.")


async def pod_page(page: Page) -> Response:
    """The pod's own page, through the short-lived link the API hands out."""
    service_id, pod = page.path["service_id"], page.path["pod_name"]
    data = await page.data("CreateModelServicePodUrl", {"ServiceId": service_id, "PodName": pod})
    return RedirectResponse(data["Url"], status_code=303)


# ---- helpers ----------------------------------------------------------------------------------


def _back(page: Page, default: str) -> str:
    """A page of this workspace the form names to come back to (`back`), else `default`."""
    back = page.form.get("back", "")
    return back if back.startswith("/") and not back.startswith("//") else default
