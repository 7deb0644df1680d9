"""Request bodies from MLflow's arguments: model URIs, create/update bodies, traffic weights,
predict payloads.

Pure functions only (no calls to the API): the client resolves what needs the API (registry
lookups, default instance type) and hands the results in.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tcdeploy.plugin.autoscaling import with_autoscaling
from tcdeploy.plugin.configkeys import (
    BATCH,
    CLIENT,
    CREATE_KEYS,
    REQUEST,
    SERVICE,
    UPDATE_KEYS,
    ConfigKey,
    invalid,
    with_defaults,
)
from tcdeploy.protocol.urls import validate_model_uri

INPUT_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# ServiceLimit's members (all required by the schema) and the value each takes when not given.
SERVICE_LIMIT_MEMBERS = {
    "EnableInstanceRpsLimit": False,
    "InstanceRpsLimit": 0,
    "EnableInstanceReqLimit": False,
    "InstanceReqLimit": 0,
}


# ---- model URIs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A model to serve, as the wire describes it (``MlModelInfo`` and catalog/schema names)."""

    uri: str
    name: str | None = None
    version: str | None = None
    catalog: str | None = None
    schema: str | None = None
    path: str | None = None  # MlModelInfo.ModelPath: what the replicas load, when known
    model_id: str | None = None
    is_local_path: bool = False

    @property
    def needs_registry_lookup(self) -> bool:
        """``models:/[Catalog.Schema.]Model/N``: Id and ModelPath come from ``ListModelVersions``."""
        return bool(self.name and self.version and not self.path)

    def ml_model_info(self) -> dict[str, str]:
        fields = {"Id": self.model_id, "Name": self.name, "Version": self.version, "ModelPath": self.path}
        return {k: v for k, v in fields.items() if v is not None}


def parse_model_uri(model_uri: str) -> ModelRef:
    """Read ``models:/…``, ``runs:/…``, ``mlflow-artifacts:/…``, ``file:///…`` or a local path.

    Local paths become absolute (the server does not share our working directory). Raises
    ``MlflowException`` (INVALID_PARAMETER_VALUE) naming the problem.
    """
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise invalid("model_uri is required (models:/name/version, runs:/..., or a local path)")
    uri = model_uri.strip(" ")  # stray spaces from a shell, but never control characters
    if uri.startswith("models:/"):
        ref = _parse_registry_uri(uri)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):
        ref = ModelRef(uri=uri, path=uri)
    else:
        local = os.path.abspath(os.path.expanduser(uri))
        ref = ModelRef(uri=uri, path=local, is_local_path=True)
    try:
        validate_model_uri(ref.path or uri)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return ref


def _parse_registry_uri(uri: str) -> ModelRef:
    rest = uri[len("models:/") :]
    match = re.fullmatch(r"(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))", rest)
    if not match:
        raise invalid(f"model URI {uri!r} is not models:/<name>/<version> or models:/<name>@<alias>")
    name, version = match["name"], match["version"]
    parts = name.split(".")
    catalog = schema = None
    if len(parts) == 3 and all(parts):
        catalog, schema, name = parts
    elif len(parts) != 1 and "" in parts:
        raise invalid(f"model name {match['name']!r} in {uri!r} has an empty part")
    if version and version.isdigit():
        return ModelRef(uri=uri, name=name, version=version, catalog=catalog, schema=schema)
    # An alias or a stage ("latest", "Production") moves; the server's registry resolves it.
    return ModelRef(uri=uri, name=name, catalog=catalog, schema=schema, path=uri)


def registry_properties(item: Mapping[str, Any]) -> dict[str, str]:
    """``Properties: [{Key, Value}]`` of a ``ListModelVersions`` item, as a dict."""
    pairs = [p for p in item.get("Properties") or [] if isinstance(p, dict)]
    return {str(p.get("Key")): str(p.get("Value")) for p in pairs}


# ---- request bodies -------------------------------------------------------------------------------


def _wire_fields(values: Mapping[str, Any], keys: Mapping[str, ConfigKey], place: str) -> dict[str, Any]:
    return {keys[n].wire: v for n, v in values.items() if keys[n].place == place and keys[n].wire}


def _model_fields(model: ModelRef) -> dict[str, Any]:
    fields: dict[str, Any] = {"MlModelInfo": model.ml_model_info()}
    if model.catalog:
        fields["CatalogName"] = model.catalog
    if model.schema:
        fields["SchemaName"] = model.schema
    return fields


def build_create_request(
    name: str, model: ModelRef, values: Mapping[str, Any], group_id: str | None = None
) -> dict[str, Any]:
    """``CreateMLModelServices`` body; ``values`` as returned by ``convert_config``.

    ``ServiceName`` names the service (and the group made for it when ``group_id`` is not given);
    with ``group_id`` the service is a new version of that group (``NewVersion``).
    """
    complete = with_defaults(values, CREATE_KEYS)
    service = with_autoscaling(_wire_fields(complete, CREATE_KEYS, SERVICE), "scale_mode" in values)
    if "ServiceLimit" in service:
        service["ServiceLimit"] = complete_service_limit(service["ServiceLimit"])
    # Only what the user asked for: BatchConfig is tcdeploy's extension, and the server's
    # defaults are these same defaults.
    batch = _wire_fields(values, CREATE_KEYS, BATCH)
    if batch:
        service["BatchConfig"] = batch
    service.update(_model_fields(model))
    body = {
        "ServiceName": name,
        "ServiceAction": "START",
        **_wire_fields(complete, CREATE_KEYS, REQUEST),
        "Services": [service],
    }
    if group_id:
        body.update(ServiceGroupId=group_id, NewVersion=True)
    return body


def build_update_request(
    service_id: str, model: ModelRef | None, values: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``UpdateMLModelService`` body (flat): only what was given, so the rest keeps its value.

    ``current`` is the service as it is (``MLModelService``): a partial ``service_limit`` keeps
    the members it does not name from there.
    """
    action = values.get("service_action")
    changes = [n for n in values if UPDATE_KEYS[n].place != CLIENT and n != "service_action"]
    if action:
        allowed = ["replicas"] if action == "SCALE" else []
        extra = [n for n in changes if n not in allowed] + (["model_uri"] if model else [])
        if extra:
            raise invalid(
                f"service_action {action} cannot be combined with {', '.join(extra)}: "
                "the server ignores other changes in the same call; update them separately"
            )
        if action == "SCALE" and "replicas" not in values:
            raise invalid("service_action SCALE needs config 'replicas'")
    body: dict[str, Any] = {"ServiceId": service_id}
    body.update(with_autoscaling(_wire_fields(values, UPDATE_KEYS, SERVICE), "scale_mode" in values))
    body.update(_wire_fields(values, UPDATE_KEYS, REQUEST))
    if "ServiceLimit" in body:
        body["ServiceLimit"] = complete_service_limit(body["ServiceLimit"], (current or {}).get("ServiceLimit"))
    batch = _wire_fields(values, UPDATE_KEYS, BATCH)
    if batch:
        body["BatchConfig"] = batch
    if model:
        body.update(_model_fields(model))
    return body


def complete_service_limit(given: Any, current: Any = None) -> dict[str, Any]:
    """A ``ServiceLimit`` with all four members, as the schema requires: the ones given, then
    the service's ``current`` ones, then "no limit" (off, 0)."""
    if not isinstance(given, Mapping):
        raise invalid('config service_limit must be a JSON object such as {"EnableInstanceRpsLimit": true, ...}')
    unknown = sorted(set(given) - set(SERVICE_LIMIT_MEMBERS))
    if unknown:
        raise invalid(f"config service_limit: {', '.join(unknown)} not one of {', '.join(SERVICE_LIMIT_MEMBERS)}")
    base = {k: v for k, v in (current or {}).items() if k in SERVICE_LIMIT_MEMBERS and v is not None}
    return {**SERVICE_LIMIT_MEMBERS, **base, **given}


def traffic_weights(group: dict[str, Any], traffic: Any) -> list[dict[str, Any]]:
    """``UpdateServiceGroupWeights.WeightEntries`` from ``{"<svc id or name>": weight}``; services
    of the group left out get 0.

    Weights are shares, not percents that must sum to 100: the real API splits traffic "by the
    ratio of the weights" (TI-ONE's ``WeightEntry.Weight``) and the server decides what it takes
    (0-100 each, at least one above 0); only names and whole numbers are checked here.
    """
    services = group.get("Services") or []
    listing = ", ".join(f"{s.get('ServiceName')} ({s.get('ServiceId')})" for s in services) or "none"
    if not isinstance(traffic, dict) or not traffic:
        raise invalid('config traffic must be a JSON object such as {"<deployment>": 100}')
    weights: dict[str, int] = {}
    for ref, weight in traffic.items():
        match = next((s for s in services if ref in (s.get("ServiceId"), s.get("ServiceName"))), None)
        if match is None:
            raise invalid(
                f"traffic: {ref!r} is not a deployment of endpoint "
                f"{group.get('ServiceGroupName')!r} (its deployments: {listing})"
            )
        if match["ServiceId"] in weights:
            raise invalid(f"traffic: {ref!r} names a deployment already given")
        weights[match["ServiceId"]] = _whole_number(ref, weight)
    return [{"ServiceId": s["ServiceId"], "Weight": weights.get(s["ServiceId"], 0)} for s in services]


def _whole_number(ref: str, weight: Any) -> int:
    whole = isinstance(weight, int) or (isinstance(weight, float) and weight.is_integer())
    if isinstance(weight, bool) or not whole:
        raise invalid(f"traffic: weight of {ref!r} must be a whole number, not {weight!r}")
    return int(weight)


def predict_payload(inputs: Any, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The scoring-server body for ``inputs``: DataFrame -> dataframe_split, dict as is (or
    under ``inputs``), list/ndarray -> inputs; ``params`` added."""
    if inputs is None:
        raise invalid("inputs is required")
    pandas = sys.modules.get("pandas")  # a DataFrame cannot exist unless pandas is loaded
    if pandas is not None and isinstance(inputs, pandas.DataFrame):
        body: dict[str, Any] = {
            "dataframe_split": json.loads(inputs.to_json(orient="split", index=False, date_format="iso"))
        }
    elif isinstance(inputs, Mapping):
        body = dict(inputs) if any(f in inputs for f in INPUT_FORMATS) else {"inputs": dict(inputs)}
    elif hasattr(inputs, "tolist"):  # numpy arrays, pandas Series
        body = {"inputs": inputs.tolist()}
    elif isinstance(inputs, (list, tuple, str, int, float)):
        body = {"inputs": list(inputs) if isinstance(inputs, tuple) else inputs}
    else:
        raise invalid(
            f"inputs of type {type(inputs).__name__} are not supported: pass a DataFrame, dict, list or numpy array"
        )
    if params:
        body["params"] = dict(params)
    return body


def dumps(document: Any) -> str:
    """Compact JSON; numpy scalars and timestamps become plain values."""
    try:
        return json.dumps(document, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise invalid(f"inputs are not JSON-serializable: {exc}") from None


def _json_default(value: Any) -> Any:
    for method in ("tolist", "isoformat"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
