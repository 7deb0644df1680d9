"""MLflow's deployment API on WeData-style model services.

An MLflow *endpoint* is a service group (``grp-…``: one URL, auth, traffic weights); a
*deployment* is a service in a group (``svc-…``: one model version with its replicas).
"""

from __future__ import annotations

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
from tcdeploy.plugin.cloudapi import CloudApi, CloudApiError, mlflow_code
from tcdeploy.plugin.configkeys import (
    CREATE_KEYS,
    DELETE_KEYS,
    ENDPOINT_CREATE_KEYS,
    ENDPOINT_UPDATE_KEYS,
    UPDATE_KEYS,
    convert_config,
    invalid,
)
from tcdeploy.plugin.lookup import SERVICE_ID, Directory, is_not_found
from tcdeploy.plugin.predict import call_and_parse
from tcdeploy.plugin.settings import Settings
from tcdeploy.plugin.waiting import RUNNING, STOPPED, wait_for_service
from tcdeploy.protocol import apis
from tcdeploy.protocol.urls import validate_relative_url

FLAVOR = "python_function"
NAME_PATTERN = re.compile(apis.NAME_PATTERN)
TOKEN_TTL = 60.0  # seconds an endpoint's auth token is reused before asking again
LOG_LINES_ON_FAILURE = 20


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


def deployment_view(detail: dict[str, Any], group: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``ServiceDetail`` as MLflow shows a deployment: ``name``, ``flavor``, ids, then the rest."""
    fields = snake_keys(detail)
    view = {
        "name": detail.get("ServiceName"),
        "flavor": FLAVOR,
        "service_id": detail.get("ServiceId"),
        "service_group_id": detail.get("ServiceGroupId") or (group or {}).get("ServiceGroupId"),
        "endpoint": detail.get("ServiceGroupName") or (group or {}).get("ServiceGroupName"),
        "status": detail.get("Status"),
        "url": detail.get("Url"),
    }
    return {**view, **{k: v for k, v in fields.items() if k not in view}}


def endpoint_view(group: dict[str, Any]) -> dict[str, Any]:
    """A group as MLflow shows an endpoint: ``name``, id, URL, auth, traffic, deployments."""
    services = group.get("Services") or []
    return {
        "name": group.get("ServiceGroupName"),
        "endpoint_id": group.get("ServiceGroupId"),
        "service_group_id": group.get("ServiceGroupId"),
        "url": group.get("Url"),
        "auth_enabled": bool(group.get("AuthorizationEnable")),
        "status": group.get("Status"),
        "traffic": {s.get("ServiceName"): s.get("Weight") for s in services},
        "deployments": [
            {
                "name": s.get("ServiceName"),
                "service_id": s.get("ServiceId"),
                "status": s.get("Status"),
                "weight": s.get("Weight"),
                "version": s.get("Version"),
                "replicas": s.get("Replicas"),
                "ready_replicas": s.get("ReadyReplicas"),
                "url": s.get("Url"),
            }
            for s in services
        ],
        "create_time": group.get("CreateTime"),
        "update_time": group.get("UpdateTime"),
    }


class TcDeploymentClient(BaseDeploymentClient):
    """Deploy MLflow models to WeData model services (Tencent Cloud) or a ``tcdeploy server``.

    ``get_deploy_client("tcdeploy://127.0.0.1:8600")`` for a local server, ``"tcdeploy"`` or
    ``"tcdeploy:/<region>"`` for the cloud; ``mlflow deployments help -t tcdeploy`` lists the
    config keys and environment variables.
    """

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self._settings = Settings.from_target(target_uri)
        self._api = CloudApi(self._settings)
        self._directory = Directory(self._api)
        self._tokens: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"TcDeploymentClient({self.target_uri!r}, workspace={self._settings.workspace_id!r})"

    # ---- deployments --------------------------------------------------------------------------

    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None) -> dict:
        """Create a service running ``model_uri``; block until it serves unless ``wait`` is false.

        ``endpoint``: the id or unique name of a group to add this version to; without it a new
        group named ``name`` is created. Returns ``name``, ``flavor``, ``service_id``,
        ``service_group_id``, ``status``, ``url`` and the service's other fields.
        """
        _check_flavor(flavor)
        _check_name(name)
        values = convert_config(config, CREATE_KEYS, "create_deployment")
        model = self._resolved_model(model_uri)
        group_id = self._directory.group(endpoint)["ServiceGroupId"] if endpoint else None
        if "instance_type" not in values:
            values["instance_type"] = self._default_instance_type()
        body = build_create_request(name, model, values, group_id)
        detail = self._api.wedata("CreateMLModelServices", body)
        if not detail.get("ServiceId"):
            raise MlflowException(f"CreateMLModelServices returned no ServiceId for {name!r}")
        detail = self._maybe_wait(detail, RUNNING, values)
        return deployment_view(detail)

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None) -> dict:
        """Change a service's model and/or settings; with a new model, block until it serves.

        ``config`` takes the create keys plus ``service_action`` (STOP/RESUME/SCALE) and
        ``service_port``; omitted settings keep their values.
        """
        _check_flavor(flavor)
        values = convert_config(config, UPDATE_KEYS, "update_deployment")
        model = self._resolved_model(model_uri) if model_uri else None
        _, service = self._directory.service(name, endpoint)
        body = build_update_request(service["ServiceId"], model, values)
        if len(body) == 1:  # nothing to change
            return deployment_view(self._directory.detail(service["ServiceId"]))
        detail = self._api.wedata("UpdateMLModelService", body)
        goal = STOPPED if values.get("service_action") == "STOP" else RUNNING
        return deployment_view(self._maybe_wait({**service, **detail}, goal, values))

    def delete_deployment(self, name, config=None, endpoint=None) -> None:
        """Delete a service (idempotent). A group created for it (same name) goes when empty."""
        convert_config(config, DELETE_KEYS, "delete_deployment")
        try:
            group, service = self._directory.service(name, endpoint)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return
            raise
        service_id = service["ServiceId"]
        _ignoring_not_found(lambda: self._api.wedata("DeleteMLModelService", {"ServiceId": service_id}))
        if group.get("ServiceGroupName") == service.get("ServiceName"):
            self._delete_group_if_empty(group["ServiceGroupId"])

    def get_deployment(self, name, endpoint=None) -> dict:
        """The service ``name`` (id or unique name): state, replicas, pods, events, URL."""
        group, service = self._directory.service(name, endpoint)
        return deployment_view(self._directory.detail(service["ServiceId"]), group)

    def list_deployments(self, endpoint=None) -> list[dict]:
        """Every service (in ``endpoint`` only, if given); each ``name`` works with get_deployment."""
        groups = [self._directory.group(endpoint)] if endpoint else self._directory.groups()
        return [deployment_view(s, g) for g in groups for s in g.get("Services") or []]

    # ---- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, name, config=None) -> dict:
        """Create an empty group; config: ``authorization_enable``."""
        values = convert_config(config, ENDPOINT_CREATE_KEYS, "create_endpoint")
        reply = self._api.tione(
            "CreateModelServiceGroup",
            {
                "ServiceGroupName": _check_name(name, "endpoint"),
                "AuthorizationEnable": values.get("authorization_enable", False),
            },
        )
        group_id = (reply.get("ServiceGroup") or {}).get("ServiceGroupId")
        return endpoint_view(self._directory.group(group_id or name))

    def update_endpoint(self, endpoint, config=None) -> dict:
        """Set traffic weights (``{"traffic": {"<svc id or name>": percent}}``, summing to 100)
        and/or auth (``{"authorization_enable": true}``)."""
        values = convert_config(config, ENDPOINT_UPDATE_KEYS, "update_endpoint")
        group = self._directory.group(endpoint)
        group_id = group["ServiceGroupId"]
        if "traffic" in values:
            weights = traffic_weights(group, values["traffic"])
            self._api.tione("ModifyServiceGroupWeights", {"ServiceGroupId": group_id, "Weights": weights})
        if "authorization_enable" in values:
            enable = values["authorization_enable"]
            self._api.tione(
                "ModifyModelServiceAuthorization", {"ServiceGroupId": group_id, "AuthorizationEnable": enable}
            )
            self._tokens.pop(group_id, None)
        return endpoint_view(self._directory.group(group_id))

    def delete_endpoint(self, endpoint) -> None:
        """Delete a group and its services (idempotent)."""
        group = self._directory.find_group(endpoint)
        if group is not None:
            self._delete_group(group["ServiceGroupId"])

    def get_endpoint(self, endpoint) -> dict:
        return endpoint_view(self._directory.group(endpoint))

    def list_endpoints(self) -> list[dict]:
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
        body = {
            "ServiceGroupId": group["ServiceGroupId"],
            # The seed sends the group id here for the group; the wire accepts both forms.
            "ServiceId": service_id or group["ServiceGroupId"],
            "CurlData": dumps(predict_payload(inputs, params)),
            "RelativeUrl": relative_url,
        }
        return call_and_parse(self._api, body, group, self._auth_token)

    def predict_stream(self, deployment_name=None, inputs=None, endpoint=None):
        raise _unsupported("predict_stream")

    def explain(self, deployment_name=None, df=None, endpoint=None):
        raise _unsupported("explain")

    # ---- extras, with the seed plugin's names and shapes ----------------------------------------

    def list_instance_types(self, spec_type: str | None = None) -> list[dict]:
        """Instance specs (``DescribeInferenceSpecs``): spec_name, spec_alias, spec_type,
        available, available_region, gpu_type, cpu, memory, gpu."""
        body = {"SpecType": spec_type.upper()} if spec_type else {}
        specs = self._api.tione("DescribeInferenceSpecs", body, scoped=False).get("SpecInfos") or []
        return [
            {
                "spec_name": s.get("SpecName"),
                "spec_alias": s.get("SpecAlias"),
                "spec_type": s.get("SpecType"),
                "available": bool(s.get("Available")),
                "available_region": list(s.get("AvailableRegion") or []),
                "gpu_type": s.get("GpuType") or "",
                "cpu": s.get("Cpu"),
                "memory": s.get("Memory"),
                "gpu": s.get("Gpu"),
            }
            for s in specs
            if not spec_type or s.get("SpecType") == spec_type.upper()
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
                "Service": "INFER",
                "ServiceId": self._directory.service_id(service_id),
                **{k: v for k, v in optional.items() if v is not None},
            },
        )
        return {
            "logs": snake_keys(data.get("Content") or []),
            "context": data.get("Context"),
            "list_over": data.get("ListOver"),
        }

    def get_endpoint_metrics(self, endpoint, start_time=None, end_time=None, step=60) -> list[dict]:
        """A group's request figures over a window (``DescribeModelServiceMonitoring``): one dict
        per ``step`` seconds with time, requests, errors, limited, p50/p99 latency ms, inflight."""
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
        """A short-lived URL to a page about the replica (``url``, ``expire_time``)."""
        return snake_keys(self._pod_action("CreateModelServicePodUrl", service_id, pod_name))

    # ---- internals ----------------------------------------------------------------------------

    def _resolved_model(self, model_uri: str) -> ModelRef:
        model = parse_model_uri(model_uri)
        if model.is_local_path and self._settings.target.is_local and not os.path.exists(model.path):
            raise MlflowException(f"model path {model.path!r} does not exist", error_code=RESOURCE_DOES_NOT_EXIST)
        return self._registry_lookup(model) if model.needs_registry_lookup else model

    def _registry_lookup(self, model: ModelRef) -> ModelRef:
        """Fill ``Id`` and ``ModelPath`` of ``models:/[C.S.]Model/N`` from ``ListModelVersions``."""
        body = {"ModelName": model.name, "MaxResults": 1000}
        if model.catalog:
            body.update(CatalogName=model.catalog, SchemaName=model.schema)
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
            if not data.get("NextPageToken"):
                break
            body["PageToken"] = data["NextPageToken"]
        known = f" (versions: {', '.join(versions)})" if versions else " (no versions registered)"
        raise MlflowException(
            f"model version {model.uri!r} is not in the registry{known}", error_code=RESOURCE_DOES_NOT_EXIST
        )

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
            return detail
        service_id = detail["ServiceId"]
        return wait_for_service(
            fetch=lambda: self._directory.detail(service_id),
            goal=goal,
            timeout=float(values.get("timeout", 900)),
            last_logs=lambda: self._last_log_lines(service_id),
        )

    def _last_log_lines(self, service_id: str, count: int = LOG_LINES_ON_FAILURE) -> list[str]:
        lines: deque[str] = deque(maxlen=count)
        body: dict[str, Any] = {"Service": "INFER", "ServiceId": service_id, "Limit": 1000}
        try:
            for _ in range(10):  # logs come oldest first: page to the end, keep the tail
                data = self._api.wedata("ListMLServiceLogs", body)
                lines.extend(
                    f"{e.get('Timestamp')} {e.get('PodName')}: {e.get('Message')}" for e in data.get("Content") or []
                )
                if data.get("ListOver") or not data.get("Context"):
                    break
                body["Context"] = data["Context"]
        except MlflowException as exc:  # the failure we report matters more than its logs
            lines.append(f"(could not read the logs: {exc.message})")
        return list(lines)

    def _delete_group_if_empty(self, group_id: str) -> None:
        group = self._directory.find_group(group_id)
        if group is not None and not group.get("Services"):
            self._delete_group(group_id)

    def _delete_group(self, group_id: str) -> None:
        _ignoring_not_found(lambda: self._api.tione("DeleteModelServiceGroup", {"ServiceGroupId": group_id}))
        self._tokens.pop(group_id, None)

    def _pod_action(self, action: str, service_ref: str, pod_name: str) -> dict[str, Any]:
        service_id = self._directory.service_id(service_ref)
        return self._api.wedata(action, {"ServiceId": service_id, "PodName": pod_name})

    def _scoring_target(self, ref: str, prefer_group: bool) -> tuple[dict[str, Any], str | None]:
        """(group, service id or None): what ``ref`` names, trying groups or services first."""

        def as_service():
            found = self._directory.find_service(ref)
            return (found[0], found[1]["ServiceId"]) if found else None

        def as_group():
            group = self._directory.find_group(ref)
            return (group, None) if group else None

        group_first = prefer_group and not SERVICE_ID.match(ref)
        for attempt in (as_group, as_service) if group_first else (as_service, as_group):
            found = attempt()
            if found:
                return found
        raise MlflowException(f"no deployment or endpoint named {ref!r}", error_code=RESOURCE_DOES_NOT_EXIST)

    def _auth_token(self, group_id: str, refresh: bool = False) -> str:
        cached = self._tokens.get(group_id)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        info = self._api.tione("DescribeModelServiceCallInfo", {"ServiceGroupId": group_id})
        call_info = info.get("ServiceCallInfoV2") or {}
        values = [((t or {}).get("Base") or {}).get("Value") for t in call_info.get("AuthTokens") or []]
        token = next((v for v in values if v), None) or call_info.get("AuthToken")
        if not token:
            raise MlflowException(
                f"endpoint {group_id} requires a token but has none: create one "
                "(CreateModelServiceAuthToken) or turn authorization off",
                error_code=mlflow_code("INVALID_STATE"),
            )
        self._tokens[group_id] = (token, time.monotonic() + TOKEN_TTL)
        return token


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
