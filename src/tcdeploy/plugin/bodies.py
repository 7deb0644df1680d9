"""Request bodies: the config-key catalogue, value conversion, model URIs, key casing.

Pure functions only (no calls to the API): the client resolves what needs the API (registry
lookups, default instance type) and hands the results in.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from tcdeploy.protocol.actions import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS
from tcdeploy.protocol.urls import validate_model_uri

SERVICE, REQUEST, BATCH, CLIENT = "service", "request", "batch", "client"
INPUT_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


# ---- the config-key catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigKey:
    """One ``config`` key: its type, default, a line of doc, and where it goes in a request."""

    name: str
    type: type
    default: Any
    doc: str
    place: str  # SERVICE (Services[0] on create), REQUEST (top level), BATCH (BatchConfig), CLIENT
    wire: str | None = None  # the field name on the wire; None for client-side keys
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "int", float: "number", str: "string", dict: "JSON object"}[self.type]


def _key(name, type_, default, doc, place, wire=None, **limits) -> ConfigKey:
    return ConfigKey(name, type_, default, doc, place, wire, **limits)


_SERVICE_KEYS = (
    _key("instance_type", str, None, "Instance spec (see list_instance_types()); required on the "
         "cloud, a local server uses its first available spec when omitted.", SERVICE, "InstanceType"),
    _key("replicas", int, 1, "Number of replicas.", SERVICE, "Replicas", minimum=0, maximum=16),
    _key("charge_type", str, "POSTPAID_BY_HOUR", "Billing mode.", SERVICE, "ChargeType"),
    _key("scale_mode", str, "MANUAL", "Scaling mode.", SERVICE, "ScaleMode", choices=("MANUAL", "AUTO")),
    _key("service_limit", dict, None, 'Rate limit, e.g. {"EnableInstanceRpsLimit": true, '
         '"InstanceRpsLimit": 50} (snake_case keys work too).', SERVICE, "ServiceLimit"),
    _key("scheduled_action", dict, None, 'Scheduled stop, e.g. {"ScheduleStop": true, '
         '"ScheduleStopTime": "2026-01-01T00:00:00+08:00"}.', SERVICE, "ScheduledAction"),
    _key("max_batch_size", int, DEFAULT_MAX_BATCH_ROWS, "Rows a replica merges into one model call "
         "(1 turns batching off).", BATCH, "MaxBatchSize", minimum=1, maximum=8192),
    _key("max_batch_wait_ms", float, DEFAULT_MAX_BATCH_WAIT_MS, "How long a replica waits to fill a batch (ms).", BATCH,
         "MaxBatchWaitMs", minimum=0, maximum=1000),
)
_REQUEST_KEYS = (
    _key("authorization_enable", bool, False, "Require an auth token on the group URL.", REQUEST,
         "AuthorizationEnable"),
    _key("log_enable", bool, False, "Ship replica logs to the log service.", REQUEST, "LogEnable"),
    _key("log_config", dict, None, 'Log destination, e.g. {"LogsetId": "...", "TopicId": "..."}.',
         REQUEST, "LogConfig"),
    _key("inference_table_push_enable", bool, False, "Record every request and reply in the "
         "inference table.", REQUEST, "InferenceTablePushEnable"),
    _key("service_description", str, None, "Free-text description.", REQUEST, "ServiceDescription"),
    _key("model_source", str, "MODEL", "Where the model comes from.", REQUEST, "ModelSource"),
    _key("status", str, "NEW", "Service status field, as the console sends it.", REQUEST, "Status"),
)
_CREATE_ONLY_KEYS = tuple(
    _key(name, str, None, f"Kept and shown back ({wire}).", REQUEST, wire)
    for name, wire in (("catalog_path", "CatalogPath"), ("schema_path", "SchemaPath"),
                       ("payload_path", "PayloadPath"))
)
_UPDATE_ONLY_KEYS = (
    _key("service_action", str, None, "STOP, RESUME, or SCALE (to `replicas`); the server ignores "
         "every other change in the same call.", REQUEST, "ServiceAction",
         choices=("STOP", "RESUME", "SCALE")),
    _key("service_port", int, None, "Port the model server listens on inside a replica.", REQUEST,
         "ServicePort", minimum=1, maximum=65535),
)
_CLIENT_KEYS = (
    _key("wait", bool, True, "Block until the deployment serves (false: return at once).", CLIENT),
    _key("timeout", float, 900, "Seconds to wait before giving up.", CLIENT, minimum=1),
)


def _catalogue(*groups: Iterable[ConfigKey]) -> dict[str, ConfigKey]:
    return {key.name: key for group in groups for key in group}


CREATE_KEYS = _catalogue(_SERVICE_KEYS, _REQUEST_KEYS, _CREATE_ONLY_KEYS, _CLIENT_KEYS)
UPDATE_KEYS = _catalogue(_SERVICE_KEYS, _REQUEST_KEYS, _UPDATE_ONLY_KEYS, _CLIENT_KEYS)
DELETE_KEYS: dict[str, ConfigKey] = {}
ENDPOINT_CREATE_KEYS = _catalogue((
    _key("authorization_enable", bool, False, "Require an auth token on the endpoint URL.",
         REQUEST, "AuthorizationEnable"),
))
ENDPOINT_UPDATE_KEYS = _catalogue(ENDPOINT_CREATE_KEYS.values(), (
    _key("traffic", dict, None, 'Weights by deployment (service id or name), summing to 100, '
         'e.g. {"iris-v1": 50, "iris-v2": 50}.', CLIENT),
))
RUN_LOCAL_KEYS = _catalogue((
    _key("host", str, "127.0.0.1", "Address to listen on.", CLIENT),
    _key("port", int, 5000, "Port to listen on.", CLIENT, minimum=1, maximum=65535),
), [k for k in _SERVICE_KEYS if k.place == BATCH])


def describe_keys(keys: Mapping[str, ConfigKey]) -> str:
    """Each key's name, type and default, then its doc on the next line (for ``target_help``)."""
    lines = []
    for key in keys.values():
        default = "none" if key.default is None else json.dumps(key.default)
        choices = f" ({'/'.join(key.choices)})" if key.choices else ""
        lines.append(f"  {key.name:<28} {key.type_name}{choices}, default {default}")
        lines.append(f"      {key.doc}")
    return "\n".join(lines) + "\n"


# ---- value conversion -----------------------------------------------------------------------------

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _from_text(key: ConfigKey, text: str) -> Any:
    """Read a CLI ``-C key=value`` string as the key's type."""
    stripped = text.strip()
    if key.type is bool:
        if stripped.lower() in _TRUE | _FALSE:
            return stripped.lower() in _TRUE
        raise ValueError("is not a boolean (use true/false or 1/0)")
    if key.type is int:
        if re.fullmatch(r"[+-]?\d+", stripped):
            return int(stripped)
        raise ValueError("is not an integer")
    if key.type is float:
        try:
            return float(stripped)
        except ValueError:
            raise ValueError("is not a number") from None
    if key.type is dict:
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"is not valid JSON ({exc})") from None
    return text


def _checked(key: ConfigKey, value: Any) -> Any:
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, key.type) or (key.type is int and isinstance(value, bool)):
        raise ValueError(f"must be a {key.type_name}, not {type(value).__name__}")
    if key.minimum is not None and value < key.minimum:
        raise ValueError(f"must be at least {key.minimum:g}")
    if key.maximum is not None and value > key.maximum:
        raise ValueError(f"must be at most {key.maximum:g}")
    if key.choices:
        value = value.upper()
        if value not in key.choices:
            raise ValueError(f"must be one of {', '.join(key.choices)}")
    return pascal_keys(value) if key.type is dict and key.wire else value


def unknown_key_error(name: str, keys: Mapping[str, ConfigKey], what: str) -> MlflowException:
    close = difflib.get_close_matches(name, list(keys), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(keys)) or "none"
    return invalid(f"unknown config key {name!r} for {what}{hint}; known keys: {known}")


def convert_config(config: Mapping[str, Any] | None, keys: Mapping[str, ConfigKey],
                   what: str) -> dict[str, Any]:
    """Typed values for the keys given (``None`` values dropped); unknown keys refused."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise invalid(f"config for {what} must be a dict, not {type(config).__name__}")
    values: dict[str, Any] = {}
    for name, raw in config.items():
        key = keys.get(name)
        if key is None:
            raise unknown_key_error(str(name), keys, what)
        if raw is None:
            continue
        try:
            value = _from_text(key, raw) if isinstance(raw, str) and key.type is not str else raw
            values[name] = _checked(key, value)
        except ValueError as exc:
            raise invalid(f"config {name!r}: {raw!r} {exc}") from None
    return values


def with_defaults(values: Mapping[str, Any], keys: Mapping[str, ConfigKey]) -> dict[str, Any]:
    return {**{k.name: k.default for k in keys.values() if k.default is not None}, **values}


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
    rest = uri[len("models:/"):]
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


def build_create_request(name: str, model: ModelRef, values: Mapping[str, Any],
                         group_id: str | None = None) -> dict[str, Any]:
    """``CreateMLModelServices`` body; ``values`` as returned by ``convert_config``."""
    complete = with_defaults(values, CREATE_KEYS)
    service = _wire_fields(complete, CREATE_KEYS, SERVICE)
    batch = _wire_fields(complete, CREATE_KEYS, BATCH)
    if batch:
        service["BatchConfig"] = batch
    service.update(_model_fields(model))
    body = {"ServiceName": name, "ServiceAction": "START", **_wire_fields(complete, CREATE_KEYS, REQUEST),
            "Services": [service]}
    if group_id:
        body["ServiceGroupId"] = group_id
    return body


def build_update_request(service_id: str, model: ModelRef | None,
                         values: Mapping[str, Any]) -> dict[str, Any]:
    """``UpdateMLModelService`` body (flat): only what was given, so the rest keeps its value."""
    action = values.get("service_action")
    changes = [n for n in values if UPDATE_KEYS[n].place != CLIENT and n != "service_action"]
    if action:
        allowed = ["replicas"] if action == "SCALE" else []
        extra = [n for n in changes if n not in allowed] + (["model_uri"] if model else [])
        if extra:
            raise invalid(f"service_action {action} cannot be combined with {', '.join(extra)}: "
                          "the server ignores other changes in the same call; update them separately")
        if action == "SCALE" and "replicas" not in values:
            raise invalid("service_action SCALE needs config 'replicas'")
    body: dict[str, Any] = {"ServiceId": service_id}
    body.update(_wire_fields(values, UPDATE_KEYS, SERVICE))
    body.update(_wire_fields(values, UPDATE_KEYS, REQUEST))
    batch = _wire_fields(values, UPDATE_KEYS, BATCH)
    if batch:
        body["BatchConfig"] = batch
    if model:
        body.update(_model_fields(model))
    return body


def predict_payload(inputs: Any, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The scoring-server body for ``inputs``: DataFrame -> dataframe_split, dict as is (or
    under ``inputs``), list/ndarray -> inputs; ``params`` added."""
    if inputs is None:
        raise invalid("inputs is required")
    pandas = sys.modules.get("pandas")  # a DataFrame cannot exist unless pandas is loaded
    if pandas is not None and isinstance(inputs, pandas.DataFrame):
        body: dict[str, Any] = {"dataframe_split": json.loads(
            inputs.to_json(orient="split", index=False, date_format="iso"))}
    elif isinstance(inputs, Mapping):
        body = dict(inputs) if any(f in inputs for f in INPUT_FORMATS) else {"inputs": dict(inputs)}
    elif hasattr(inputs, "tolist"):  # numpy arrays, pandas Series
        body = {"inputs": inputs.tolist()}
    elif isinstance(inputs, (list, tuple, str, int, float)):
        body = {"inputs": list(inputs) if isinstance(inputs, tuple) else inputs}
    else:
        raise invalid(f"inputs of type {type(inputs).__name__} are not supported: pass a "
                      "DataFrame, dict, list or numpy array")
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


# ---- key casing -----------------------------------------------------------------------------------

_WORD_BOUNDARY_1 = re.compile(r"(.)([A-Z][a-z]+)")
_WORD_BOUNDARY_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """``ServiceGroupId`` -> ``service_group_id``."""
    return _WORD_BOUNDARY_2.sub(r"\1_\2", _WORD_BOUNDARY_1.sub(r"\1_\2", name)).lower()


def pascal(name: str) -> str:
    """``enable_instance_rps_limit`` -> ``EnableInstanceRpsLimit``; PascalCase is kept."""
    if "_" not in name:
        return name[:1].upper() + name[1:]
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def snake_keys(value: Any) -> Any:
    """Every dict key in a reply (nested, inside lists too) to snake_case."""
    if isinstance(value, dict):
        return {snake(k): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def pascal_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {pascal(k): pascal_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal_keys(v) for v in value]
    return value
