"""MLflow's deployment API on WeData model services (wedata 2025-10-10).

An MLflow *endpoint* is a service group (one URL, auth, traffic weights); a *deployment* is a
service in a group (one model version with its replicas). Ids are the API's (a group is a bare
UUID, a service ``<group uuid>-<n>``); which one a reference names is asked of the API.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mlflow.deployments.base import BaseDeploymentClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from tcdeploy.plugin.bodies import (
    ModelRef,
    build_create_request,
    build_update_request,
    dumps,
    parse_model_uri,
    predict_payload,
    registry_properties,
    traffic_weights,
)
from tcdeploy.plugin.casing import snake_keys
from tcdeploy.plugin.clierrors import install_when_under_mlflow_cli
from tcdeploy.plugin.cloudapi import CloudApi, CloudApiError, Send, mlflow_code
from tcdeploy.plugin.configkeys import (
    BATCH,
    CREATE_KEYS,
    DELETE_KEYS,
    ENDPOINT_CREATE_KEYS,
    ENDPOINT_UPDATE_KEYS,
    UPDATE_KEYS,
    ConfigKey,
    convert_config,
    invalid,
)
from tcdeploy.plugin.lookup import Directory, Group, is_not_found
from tcdeploy.plugin.predict import call_and_parse, request_from_cli_frame
from tcdeploy.plugin.settings import Settings
from tcdeploy.plugin.streaming import chat_url, check_chat_inputs, stream_chat
from tcdeploy.plugin.waiting import (
    RUNNING,
    STOPPED,
    containers,
    pod_ready,
    pods,
    replica_counts,
    wait_for_service,
)
from tcdeploy.protocol import apis
from tcdeploy.protocol.urls import validate_relative_url

FLAVOR = "python_function"
NAME_PATTERN = re.compile(apis.NAME_PATTERN)
TOKEN_TTL = 60.0  # seconds an endpoint's auth token is reused before asking again
LOG_LINES_ON_FAILURE = 20
LOG_PAGE, LOG_PAGES = 1000, 10  # the tail of the logs: up to 10 pages of 1000 lines
EVENT_PAGE, EVENT_PAGES = 100, 10
INFER = "INFER"  # ListMLServiceLogs/ListModelServiceEvents `Service`: online inference
BILLING = {"ChargeType": "POSTPAID_BY_HOUR", "TaskType": "INFERENCE"}
# What a server answers for an action it does not serve.
UNSERVED = ("InvalidAction", "UnsupportedOperation")
# Notes for the person at the keyboard (nothing to delete, what a delete takes with it): on
# stderr through logging's last resort when nothing is configured, in the caller's logs otherwise.
_logger = logging.getLogger(__name__)


def _unsupported(what: str) -> MlflowException:
    return MlflowException(
        f"{what} is not supported by the tcdeploy target",
        error_code=mlflow_code("NOT_IMPLEMENTED", "INVALID_PARAMETER_VALUE"),
    )


def _check_flavor(flavor: str | None) -> None:
    if flavor not in (None, FLAVOR):
        raise invalid(f"flavor {flavor!r} is not supported: replicas serve {FLAVOR!r}")


def _check_name(name: Any, what: str = "deployment") -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise invalid(
            f"{what} name {name!r} must be 1-60 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def pod_view(pod: dict[str, Any]) -> dict[str, Any]:
    """A ``Pod`` (``PodInfos[]``) as MLflow shows a replica: ``pod_name``, ``ready``,
    ``restart_count`` (summed over its containers), then the pod's own fields."""
    view = {
        "pod_name": pod.get("Name"),
        "phase": pod.get("Phase"),
        "status": pod.get("Status"),
        "ready": pod_ready(pod),
        "restart_count": sum(int(c.get("RestartCount") or 0) for c in containers(pod)),
    }
    return {**view, **{k: v for k, v in snake_keys(pod).items() if k not in view}}


def deployment_view(
    detail: dict[str, Any],
    group: dict[str, Any] | None = None,
    url: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ``MLModelService`` as MLflow shows a deployment: ``name``, ``flavor``, ids, status,
    URL, replicas, pods (and events when read), then the rest of its fields in snake_case."""
    ready, wanted = replica_counts(detail)
    view = {
        "name": detail.get("ServiceName"),
        "flavor": FLAVOR,
        "service_id": detail.get("ServiceId"),
        "service_group_id": detail.get("ServiceGroupId") or (group or {}).get("ServiceGroupId"),
        "endpoint": (group or {}).get("ServiceGroupName"),
        "status": detail.get("Status"),
        "url": url,
        "replicas": wanted,
        "ready_replicas": ready,
        "service_description": detail.get("Description"),
        "pods": [pod_view(p) for p in pods(detail)],
    }
    if events is not None:
        view["events"] = snake_keys(events)
    return {**view, **{k: v for k, v in snake_keys(detail).items() if k not in view}}


def deployment_summary(service: dict[str, Any], group: dict[str, Any], url: str | None) -> dict[str, Any]:
    """A service as a list shows it: what a person scans for; ``get_deployment`` has the rest."""
    ready, wanted = replica_counts(service)
    return {
        "name": service.get("ServiceName"),
        "service_id": service.get("ServiceId"),
        "service_group_id": group.get("ServiceGroupId"),
        "endpoint": group.get("ServiceGroupName"),
        "status": service.get("Status"),
        "replicas": wanted,
        "ready_replicas": ready,
        "url": url,
    }


def endpoint_view(group: dict[str, Any], url: str | None = None, token: str | None = None) -> dict[str, Any]:
    """An ``MLModelServiceGroup`` as MLflow shows an endpoint: ``name``, id, URL, auth (with the
    token the URL takes, when read), traffic, deployments."""
    services = [s for s in group.get("Services") or [] if isinstance(s, dict)]
    auth = bool(group.get("AuthorizationEnable"))
    return {
        "name": group.get("ServiceGroupName"),
        "endpoint_id": group.get("ServiceGroupId"),
        "service_group_id": group.get("ServiceGroupId"),
        "url": url,
        "auth_enabled": auth,
        **({"auth_token": token} if auth and token else {}),
        "status": group.get("Status"),
        "description": group.get("Description"),
        "traffic": {s.get("ServiceName"): s.get("Weight") for s in services},
        "deployments": [_version_entry(s) for s in services],
        "create_time": group.get("CreateTime"),
        "update_time": group.get("UpdateTime"),
    }


def _version_entry(service: dict[str, Any]) -> dict[str, Any]:
    """A service as an endpoint lists it."""
    ready, wanted = replica_counts(service)
    return {
        "name": service.get("ServiceName"),
        "service_id": service.get("ServiceId"),
        "status": service.get("Status"),
        "weight": service.get("Weight"),
        "version": service.get("Version"),
        "replicas": wanted,
        "ready_replicas": ready,
        "ml_model_info": snake_keys(service.get("MlModelInfo")),
    }


class TcDeploymentClient(BaseDeploymentClient):
    """Deploy MLflow models to WeData model services (Tencent Cloud) or a ``tcdeploy server``.

    ``get_deploy_client("tcdeploy://127.0.0.1:8600")`` for a local server, ``"tcdeploy"`` or
    ``"tcdeploy:/<region>"`` for the cloud; ``mlflow deployments help -t tcdeploy`` lists the
    config keys and environment variables.
    """

    def __init__(self, target_uri: str, *, send: Send | None = None) -> None:
        """``send``: the seam calls go through (default: the SDK signs and posts; see ``cloudapi``)."""
        super().__init__(target_uri)
        install_when_under_mlflow_cli()
        self._settings = Settings.from_target(target_uri)
        self._api = CloudApi(self._settings, send=send)
        self._directory = Directory(self._api)
        self._tokens: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"TcDeploymentClient({self.target_uri!r}, workspace={self._settings.workspace_id!r})"

    # ---- deployments --------------------------------------------------------------------------

    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None) -> dict:
        """Create a service running ``model_uri``; block until it serves unless ``wait`` is false.

        ``endpoint``: the id or unique name of a group to add this version to; without it a new
        group named ``name`` is created. Returns ``name``, ``flavor``, ``service_id``,
        ``service_group_id``, ``status``, ``url``, ``pods`` and the service's other fields.
        """
        _check_flavor(flavor)
        _check_name(name)
        values = convert_config(config, CREATE_KEYS, "create_deployment")
        self._check_extensions(values, CREATE_KEYS)
        model = self._resolved_model(model_uri)
        group = self._directory.group(endpoint) if endpoint else None
        if "instance_type" not in values:
            values["instance_type"] = self._default_instance_type()
        values["instance_type"] = self._spelled_as_offered(values["instance_type"])
        body = build_create_request(name, model, values, group["ServiceGroupId"] if group else None)
        created = self._api.wedata("CreateMLModelServices", body)
        service = _new_service(created, group, name)
        detail = self._maybe_wait(service, RUNNING, values)
        return self._deployment(detail, created)

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None) -> dict:
        """Change a service's model and/or settings; with a new model, block until it serves.

        ``config`` takes the create keys plus ``service_action`` (STOP/RESUME/SCALE) and
        ``service_port``; omitted settings keep their values.
        """
        _check_flavor(flavor)
        values = convert_config(config, UPDATE_KEYS, "update_deployment")
        self._check_extensions(values, UPDATE_KEYS)
        if "instance_type" in values:
            values["instance_type"] = self._spelled_as_offered(values["instance_type"])
        model = self._resolved_model(model_uri) if model_uri else None
        group, service = self._directory.service(name, endpoint)
        body = build_update_request(service["ServiceId"], model, values, current=service)
        if len(body) == 1:  # nothing to change
            return self._deployment(self._directory.detail(service["ServiceId"]), group)
        detail = self._api.wedata("UpdateMLModelService", body)
        goal = STOPPED if values.get("service_action") == "STOP" else RUNNING
        return self._deployment(self._maybe_wait({**service, **detail}, goal, values), group)

    def delete_deployment(self, name, config=None, endpoint=None) -> None:
        """Delete a service (idempotent). A group created for it (same name) goes when empty."""
        convert_config(config, DELETE_KEYS, "delete_deployment")
        try:
            group, service = self._directory.service(name, endpoint)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                _logger.warning("%s: nothing to delete", exc.message)
                return
            raise
        service_id = service["ServiceId"]
        _ignoring_not_found(lambda: self._api.wedata("DeleteMLModelService", {"ServiceId": service_id}))
        if group.get("ServiceGroupName") == service.get("ServiceName"):
            self._delete_group_if_empty(group["ServiceGroupId"])

    def get_deployment(self, name, endpoint=None) -> dict:
        """The service ``name`` (id or unique name): state, replicas, pods, events, URL."""
        group, service = self._directory.service(name, endpoint)
        return self._deployment(self._directory.detail(service["ServiceId"]), group)

    def list_deployments(self, endpoint=None) -> list[dict]:
        """Every service (in ``endpoint`` only, if given); each ``name`` works with get_deployment.

        Each shows name, id, endpoint, status, replicas (ready/wanted) and its endpoint's URL (one
        call per endpoint); get_deployment has every detail."""
        groups = [self._directory.group(endpoint)] if endpoint else self._directory.groups()
        listed = []
        for group in groups:
            services = [s for s in group.get("Services") or [] if isinstance(s, dict)]
            url = self._url(ServiceGroupId=group["ServiceGroupId"]) if services else None
            listed.extend(deployment_summary(s, group, url) for s in services)
        return listed

    # ---- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, name, config=None) -> dict:
        """Create an empty group; config: ``authorization_enable``.

        WeData has no action for an empty group (its groups come with their first service, as
        create_deployment makes them): this is ``tcdeploy server``'s own ``CreateModelServiceGroup``.
        """
        values = convert_config(config, ENDPOINT_CREATE_KEYS, "create_endpoint")
        _check_name(name, "endpoint")
        if not self._settings.target.is_self_hosted:
            raise MlflowException(
                "create_endpoint: the cloud API has no action that creates an empty service group; "
                "create_deployment creates one named after the deployment (add versions with endpoint=...)",
                error_code=mlflow_code("NOT_IMPLEMENTED", "INVALID_PARAMETER_VALUE"),
            )
        reply = self._api.tione(
            "CreateModelServiceGroup",
            {"ServiceGroupName": name, "AuthorizationEnable": values.get("authorization_enable", False)},
        )
        group_id = (reply.get("ServiceGroup") or {}).get("ServiceGroupId")
        return self._endpoint(self._directory.group_by_id(group_id) if group_id else self._directory.group(name))

    def update_endpoint(self, endpoint, config=None) -> dict:
        """Set traffic weights (``{"traffic": {"<svc id or name>": weight}}``, shares of the traffic)
        and/or auth (``{"authorization_enable": true}``)."""
        values = convert_config(config, ENDPOINT_UPDATE_KEYS, "update_endpoint")
        group = self._directory.group(endpoint)
        group_id = group["ServiceGroupId"]
        if "traffic" in values:
            entries = traffic_weights(group, values["traffic"])
            self._api.wedata("UpdateServiceGroupWeights", {"ServiceGroupId": group_id, "WeightEntries": entries})
        if "authorization_enable" in values:
            enable = values["authorization_enable"]
            self._api.wedata(
                "UpdateModelServiceAuthorization", {"ServiceGroupId": group_id, "AuthorizationEnable": enable}
            )
            self._tokens.pop(group_id, None)
        return self._endpoint(self._directory.group_by_id(group_id))

    def delete_endpoint(self, endpoint) -> None:
        """Delete a group and its services (idempotent); says which deployments go with it."""
        group = self._directory.find_group(endpoint)
        if group is None:
            _logger.warning("endpoint %r does not exist: nothing to delete", endpoint)
            return
        names = [s.get("ServiceName") for s in group.get("Services") or [] if isinstance(s, dict)]
        if names:
            _logger.warning("deleting endpoint %r with its deployments: %s", endpoint, ", ".join(map(str, names)))
        self._delete_group(group["ServiceGroupId"])

    def get_endpoint(self, endpoint) -> dict:
        """The group ``endpoint`` (id or unique name) with its URL, auth, traffic and deployments."""
        return self._endpoint(self._directory.group(endpoint))

    def list_endpoints(self) -> list[dict]:
        """Every group; the list carries no ``url`` (one call per group): get_endpoint has it."""
        return [endpoint_view(g) for g in self._directory.groups()]

    # ---- predictions --------------------------------------------------------------------------

    def predict(self, deployment_name=None, inputs=None, endpoint=None, params=None):
        """Score ``inputs`` on a group (traffic weights apply) or one service (that version).

        ``deployment_name``: a service or group, by id or name (a name both use means the
        service). ``endpoint``: with ``deployment_name``, the relative URL to call (default
        ``/predict``); alone, as ``mlflow deployments predict --endpoint`` passes it, the group.
        """
        target, relative_url, prefer_group = _predict_route(deployment_name, endpoint)
        group, service_id = self._scoring_target(target, prefer_group)
        inputs = request_from_cli_frame(inputs)
        body = {
            "ServiceGroupId": group["ServiceGroupId"],
            # The schema's own words: for the group, pass the group id as ServiceId.
            "ServiceId": service_id or group["ServiceGroupId"],
            "CurlData": dumps(predict_payload(inputs, params)),
            "RelativeUrl": relative_url,
        }
        return call_and_parse(self._api, body, bool(group.get("AuthorizationEnable")), self._auth_token)

    def predict_stream(self, deployment_name=None, inputs=None, endpoint=None):
        """Stream a chat reply from an LLM service (a deployment) or its group (an endpoint):
        yields OpenAI ``chat.completion.chunk`` dicts as the model produces them. ``inputs`` is the
        chat request, ``{"messages": [...]}`` with optional temperature, top_p, max_tokens, stop."""
        check_chat_inputs(inputs)
        target, _, prefer_group = _predict_route(deployment_name, endpoint)
        group, service_id = self._scoring_target(target, prefer_group)
        group_id = group["ServiceGroupId"]
        url = self._url(ServiceGroupId=group_id)
        if not url:
            raise MlflowException(f"endpoint {group_id} has no URL to stream from")
        token = self._auth_token(group_id) if group.get("AuthorizationEnable") else None
        return stream_chat(chat_url(url, group_id, service_id), token, inputs)

    def explain(self, deployment_name=None, df=None, endpoint=None):
        raise _unsupported("explain")

    # ---- extras, with the seed plugin's names and shapes ----------------------------------------

    def list_instance_types(self, spec_type: str | None = None) -> list[dict]:
        """Instance specs for inference (``GetBillingSpecs``; TI-ONE ``DescribeBillingSpecs`` where
        that is not served): spec_name, spec_alias, spec_type, available, available_region,
        gpu_type, spec_features (cpu, memory, gpu when the server tells them)."""
        wanted = spec_type.upper() if spec_type else None
        return [
            {
                "spec_name": s.get("SpecName"),
                "spec_alias": s.get("SpecAlias"),
                "spec_type": s.get("SpecType"),
                "available": bool(s.get("Available")),
                "available_region": list(s.get("AvailableRegion") or []),
                "gpu_type": s.get("GpuType") or "",
                "spec_features": list(s.get("SpecFeatures") or []),
                "cpu": s.get("Cpu"),
                "memory": s.get("Memory"),
                "gpu": s.get("Gpu"),
            }
            for s in self._billing_specs()
            if not wanted or str(s.get("SpecType") or "").upper() == wanted
        ]

    def get_pod_logs(self, service_id, pod_name, limit=None, start_time=None, end_time=None, context=None) -> dict:
        """Replica logs (``ListMLServiceLogs``; ``pod_name`` takes ``*`` wildcards):
        ``{"logs": [{id, message, pod_name, timestamp}], "context": <next page>, "list_over"}``."""
        optional = {
            "PodName": pod_name,
            "Limit": limit,
            "StartTime": start_time,
            "EndTime": end_time,
            "Context": context,
        }
        data = self._api.wedata(
            "ListMLServiceLogs",
            {
                "Service": INFER,
                "ServiceId": self._directory.service_id(service_id),
                **{k: v for k, v in optional.items() if v is not None},
            },
        )
        content = data.get("Content") or []
        return {
            "logs": snake_keys(content),
            "context": data.get("Context") or None,
            "list_over": _last_page(data, limit),
        }

    def get_endpoint_metrics(self, endpoint, start_time=None, end_time=None, step=60) -> list[dict]:
        """A group's request figures over a window (``DescribeModelServiceMonitoring``, tcdeploy
        server's own): one dict per ``step`` seconds with time, requests, errors, limited,
        p50/p99 latency ms, inflight."""
        group = self._directory.group(endpoint)
        optional = {"StartTime": start_time, "EndTime": end_time}
        reply = self._api.tione(
            "DescribeModelServiceMonitoring",
            {
                "ServiceGroupId": group["ServiceGroupId"],
                "Step": int(step),
                **{k: v for k, v in optional.items() if v is not None},
            },
        )
        return reply.get("Points") or []

    def restart_pod(self, service_id, pod_name) -> dict:
        """Restart one replica (``RebuildModelServicePod``): ``{"request_id": ...}``."""
        data = self._pod_action("RebuildModelServicePod", service_id, pod_name)
        return {"request_id": data.get("TiOneRebuildServiceRequestId")}

    def debug_pod_shell(self, service_id, pod_name) -> dict:
        """A short-lived URL to a page about the replica (``url``, and ``expire_time`` when told)."""
        return snake_keys(self._pod_action("CreateModelServicePodUrl", service_id, pod_name))

    # ---- internals ----------------------------------------------------------------------------

    def _deployment(self, detail: dict[str, Any], group: Group | None) -> dict[str, Any]:
        """The deployment view of ``detail`` with its URL and events, which only their own
        actions tell."""
        service_id = detail["ServiceId"]
        return deployment_view(detail, group, url=self._url(ServiceId=service_id), events=self._events(service_id))

    def _endpoint(self, group: Group) -> dict[str, Any]:
        """The endpoint view with its URL and, when auth is on, the token the URL takes."""
        info = self._call_info(ServiceGroupId=group["ServiceGroupId"])
        url = info.get("InternetEndpoint") or None
        token = None
        if group.get("AuthorizationEnable"):
            token = info.get("AuthToken") or self._first_token(group)
        return endpoint_view(group, url=url, token=token)

    def _call_info(self, **ids: str) -> dict[str, Any]:
        """``GetModelServiceCallInfo`` (by ``ServiceGroupId`` or ``ServiceId``): ``ServiceCallInfo``."""
        data = self._api.wedata("GetModelServiceCallInfo", ids)
        info = data.get("ServiceCallInfo")
        return info if isinstance(info, dict) else {}

    def _url(self, **ids: str) -> str | None:
        return self._call_info(**ids).get("InternetEndpoint") or None

    def _events(self, service_id: str) -> list[dict[str, Any]]:
        """The service's events (``ListModelServiceEvents``), oldest first as the server orders them."""
        events: list[dict[str, Any]] = []
        for _ in range(EVENT_PAGES):
            body = {"Service": INFER, "ServiceId": service_id, "Limit": EVENT_PAGE, "Offset": len(events)}
            data = self._api.wedata("ListModelServiceEvents", body)
            page = [e for e in data.get("Events") or [] if isinstance(e, dict)]
            events.extend(page)
            if len(page) < EVENT_PAGE or len(events) >= int(data.get("TotalCount") or 0):
                break
        return events

    def _billing_specs(self) -> list[dict[str, Any]]:
        try:
            return self._api.wedata("GetBillingSpecs", dict(BILLING)).get("SpecInfos") or []
        except CloudApiError as exc:
            if not exc.cloud_code.startswith(UNSERVED):
                raise
        return self._api.tione("DescribeBillingSpecs", dict(BILLING), scoped=False).get("Specs") or []

    def _check_extensions(self, values: dict[str, Any], keys: dict[str, ConfigKey]) -> None:
        """Batching is ``tcdeploy server``'s extension: the cloud would refuse the member."""
        batch = [name for name in values if keys[name].place == BATCH]
        if batch and not self._settings.target.is_self_hosted:
            raise invalid(
                f"config {', '.join(batch)}: request batching is a tcdeploy server extension, not on the cloud"
            )

    def _resolved_model(self, model_uri: str) -> ModelRef:
        model = parse_model_uri(model_uri)
        if model.is_local_path and self._settings.target.is_local and not os.path.exists(model.path):
            raise MlflowException(f"model path {model.path!r} does not exist", error_code=RESOURCE_DOES_NOT_EXIST)
        return self._registry_lookup(model) if model.needs_registry_lookup else model

    def _registry_lookup(self, model: ModelRef) -> ModelRef:
        """Fill ``Id`` and ``ModelPath`` of ``models:/[C.S.]Model/N`` from ``ListModelVersions``."""
        # The schema requires catalog and schema; a plain MLflow name has neither, so they go
        # empty and the server reads the name as the registry's.
        body = {
            "CatalogName": model.catalog or "",
            "SchemaName": model.schema or "",
            "ModelName": model.name,
            "MaxResults": "1000",  # a string in the schema
        }
        versions: list[str] = []
        while True:
            try:
                data = self._api.wedata("ListModelVersions", body)
            except CloudApiError as exc:
                if not exc.is_not_found():
                    raise
                raise MlflowException(
                    f"model {model.uri!r} is not in the registry: {exc.cloud_message}",
                    error_code=RESOURCE_DOES_NOT_EXIST,
                ) from exc
            for item in data.get("Items") or []:
                versions.append(str(item.get("Version")))
                if str(item.get("Version")) == model.version:
                    return _registered(model, item)
            if not data.get("NextPageToken"):
                break
            body["PageToken"] = data["NextPageToken"]
        known = f" (versions: {', '.join(versions)})" if versions else " (no versions registered)"
        raise MlflowException(
            f"model version {model.uri!r} is not in the registry{known}", error_code=RESOURCE_DOES_NOT_EXIST
        )

    def _spelled_as_offered(self, instance_type: Any) -> Any:
        """``ti.s.small.post`` as the offered ``TI.S.SMALL.POST``: names are matched regardless of
        case, as a person types them; one not offered goes as given, for the server to refuse."""
        if not isinstance(instance_type, str) or instance_type == instance_type.upper():
            return instance_type  # every offered name is upper case: nothing to look up
        offered = {s["spec_name"].upper(): s["spec_name"] for s in self.list_instance_types() if s["spec_name"]}
        return offered.get(instance_type.upper(), instance_type)

    def _default_instance_type(self) -> str:
        if not self._settings.target.is_self_hosted:
            raise invalid(
                "config 'instance_type' is required on the cloud; list the choices with client.list_instance_types()"
            )
        available = [s["spec_name"] for s in self.list_instance_types() if s["available"]]
        if not available:
            raise MlflowException(
                "the server offers no available instance type", error_code=mlflow_code("INVALID_STATE")
            )
        return available[0]

    def _maybe_wait(self, detail: dict[str, Any], goal: str, values: dict[str, Any]) -> dict[str, Any]:
        if not values.get("wait", True):
            return self._directory.detail(detail["ServiceId"])
        service_id = detail["ServiceId"]
        return wait_for_service(
            fetch=lambda: self._directory.detail(service_id),
            goal=goal,
            timeout=float(values.get("timeout", 900)),
            last_logs=lambda: self._last_log_lines(service_id),
        )

    def _last_log_lines(self, service_id: str, count: int = LOG_LINES_ON_FAILURE) -> list[str]:
        lines: deque[str] = deque(maxlen=count)
        body: dict[str, Any] = {"Service": INFER, "ServiceId": service_id, "Limit": LOG_PAGE}
        try:
            for _ in range(LOG_PAGES):  # logs come oldest first: page to the end, keep the tail
                data = self._api.wedata("ListMLServiceLogs", body)
                lines.extend(
                    f"{e.get('Timestamp')} {e.get('PodName')}: {e.get('Message')}" for e in data.get("Content") or []
                )
                if _last_page(data, LOG_PAGE):
                    break
                body["Context"] = data["Context"]
        except MlflowException as exc:  # the failure we report matters more than its logs
            lines.append(f"(could not read the logs: {exc.message})")
        return list(lines)

    def _delete_group_if_empty(self, group_id: str) -> None:
        try:
            group = self._directory.group_by_id(group_id)
        except CloudApiError as exc:
            if exc.is_not_found():
                return
            raise
        if not group.get("Services"):
            self._delete_group(group_id)

    def _delete_group(self, group_id: str) -> None:
        _ignoring_not_found(lambda: self._api.wedata("DeleteMLModelServiceGroup", {"ServiceGroupId": group_id}))
        self._tokens.pop(group_id, None)

    def _pod_action(self, action: str, service_ref: str, pod_name: str) -> dict[str, Any]:
        service_id = self._directory.service_id(service_ref)
        return self._api.wedata(action, {"ServiceId": service_id, "PodName": pod_name})

    def _scoring_target(self, ref: str, prefer_group: bool) -> tuple[dict[str, Any], str | None]:
        """(group, service id or None): what ``ref`` names, as the API lists it; a reference
        that names both a group and a service means the one preferred."""
        found = self._directory.lookup(ref)
        if prefer_group and found.groups:
            return found.group(ref), None
        service = found.service(ref)
        if service:
            return service[0], service[1]["ServiceId"]
        group = found.group(ref)
        if group:
            return group, None
        raise MlflowException(f"no deployment or endpoint named {ref!r}", error_code=RESOURCE_DOES_NOT_EXIST)

    def _auth_token(self, group_id: str, refresh: bool = False) -> str:
        """A token for the group's URL: ``GetModelServiceCallInfo``'s ``AuthToken``, else the first
        of the group's ``AuthTokens``."""
        cached = self._tokens.get(group_id)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        token = self._call_info(ServiceGroupId=group_id).get("AuthToken")
        token = token or self._first_token(self._directory.group_by_id(group_id))
        if not token:
            raise MlflowException(
                f"endpoint {group_id} requires a token but has none: create one "
                "(CreateModelServiceAuthToken) or turn authorization off",
                error_code=mlflow_code("INVALID_STATE"),
            )
        self._tokens[group_id] = (token, time.monotonic() + TOKEN_TTL)
        return token

    @staticmethod
    def _first_token(group: Group) -> str | None:
        """The value of the first of the group's ``AuthTokens`` (as ``GetMLModelServiceGroup`` has them)."""
        tokens = group.get("AuthTokens") or []
        return next((v for v in (((t or {}).get("Base") or {}).get("Value") for t in tokens) if v), None)


def _new_service(created: dict[str, Any], before: Group | None, name: str) -> dict[str, Any]:
    """The service a ``CreateMLModelServices`` made, out of the group it replies with: the one
    the group did not have before (the newest of those named ``name`` if several are new)."""
    known = {s.get("ServiceId") for s in (before or {}).get("Services") or []}
    new = [s for s in created.get("Services") or [] if isinstance(s, dict) and s.get("ServiceId") not in known]
    named = [s for s in new if s.get("ServiceName") == name] or new
    if not named:
        raise MlflowException(f"CreateMLModelServices replied with no new service for {name!r}")
    return max(named, key=lambda s: int(s.get("Version") or 0))


def _registered(model: ModelRef, item: dict[str, Any]) -> ModelRef:
    props = registry_properties(item)
    path = props.get("tclake.mlflow.artifact_path") or None
    if path:
        parse_model_uri(path)  # the registry's answer passes the same checks
    return ModelRef(
        uri=model.uri,
        name=model.name,
        version=model.version,
        catalog=model.catalog,
        schema=model.schema,
        path=path,
        model_id=props.get("tclake.mlflow.model_id") or None,
    )


def _last_page(data: dict[str, Any], limit: int | None) -> bool:
    """Logs: no cursor to go on with, or fewer lines than asked for."""
    content = data.get("Content") or []
    return not data.get("Context") or not content or (limit is not None and len(content) < limit)


def _ignoring_not_found(call: Callable[[], Any]) -> None:
    """Run a delete; "already gone" is success (deletes are idempotent)."""
    try:
        call()
    except MlflowException as exc:
        if not is_not_found(exc):
            raise


def _predict_route(deployment_name: str | None, endpoint: str | None) -> tuple[str, str, bool]:
    """(target name, relative URL, prefer the group) from predict()'s arguments."""
    if deployment_name is None and endpoint is not None:
        if NAME_PATTERN.match(endpoint):
            return endpoint, "/predict", True
        try:
            validate_relative_url(endpoint)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        raise invalid("predict needs deployment_name when endpoint is a relative URL")
    if not isinstance(deployment_name, str) or not deployment_name.strip():
        raise invalid("predict needs deployment_name (a deployment or endpoint id or name)")
    try:
        relative_url = validate_relative_url(endpoint) if endpoint else "/predict"
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return deployment_name, relative_url, False
