"""The config keys: what ``config`` (``-C key=value``) may say, typed, checked and documented.

Each key knows its type, default, doc line and where it goes in a request (``place`` and
``wire``); ``bodies`` puts converted values on the wire, ``target_help`` prints the docs.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from tcdeploy.plugin.casing import pascal_keys
from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS

SERVICE, REQUEST, BATCH, CLIENT = "service", "request", "batch", "client"


def invalid(message: str) -> MlflowException:
    """The error for a wrong argument or config value (MLflow's INVALID_PARAMETER_VALUE)."""
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
    _key(
        "instance_type",
        str,
        None,
        "Instance spec (see list_instance_types()); required on the "
        "cloud, a local server uses its first available spec when omitted.",
        SERVICE,
        "InstanceType",
    ),
    _key("replicas", int, 1, "Number of replicas.", SERVICE, "Replicas", minimum=0, maximum=16),
    _key("charge_type", str, "POSTPAID_BY_HOUR", "Billing mode.", SERVICE, "ChargeType"),
    _key("scale_mode", str, "MANUAL", "Scaling mode.", SERVICE, "ScaleMode", choices=("MANUAL", "AUTO")),
    _key(
        "autoscaling",
        dict,
        None,
        'Autoscaling (means scale_mode AUTO), e.g. {"min_replicas": 1, "max_replicas": 4, "metrics": '
        '{"concurrency-util": 4}, "scale_down_window": 120}; metrics cpu-util, memory-util, service-qps, '
        "concurrency-util; `replicas` is where it starts.",
        SERVICE,
        "HorizontalPodAutoscaler",
    ),
    _key(
        "service_limit",
        dict,
        None,
        'Rate limit, e.g. {"EnableInstanceRpsLimit": true, "InstanceRpsLimit": 50} (snake_case keys work '
        "too); members left out keep their value (off, 0 on create).",
        SERVICE,
        "ServiceLimit",
    ),
    _key(
        "scheduled_action",
        dict,
        None,
        'Scheduled stop, e.g. {"ScheduleStop": true, "ScheduleStopTime": "2026-01-01T00:00:00+08:00"}.',
        SERVICE,
        "ScheduledAction",
    ),
    _key(
        "max_batch_size",
        int,
        DEFAULT_MAX_BATCH_ROWS,
        "Rows a replica merges into one model call (1 turns batching off; tcdeploy server only).",
        BATCH,
        "MaxBatchSize",
        minimum=1,
        maximum=8192,
    ),
    _key(
        "max_batch_wait_ms",
        float,
        DEFAULT_MAX_BATCH_WAIT_MS,
        "How long a replica waits to fill a batch (ms; tcdeploy server only).",
        BATCH,
        "MaxBatchWaitMs",
        minimum=0,
        maximum=1000,
    ),
)
_REQUEST_KEYS = (
    _key(
        "authorization_enable", bool, False, "Require an auth token on the group URL.", REQUEST, "AuthorizationEnable"
    ),
    _key("log_enable", bool, False, "Ship replica logs to the log service.", REQUEST, "LogEnable"),
    _key(
        "log_config", dict, None, 'Log destination, e.g. {"LogsetId": "...", "TopicId": "..."}.', REQUEST, "LogConfig"
    ),
    _key(
        "inference_table_push_enable",
        bool,
        False,
        "Record every request and reply in the inference table.",
        REQUEST,
        "InferenceTablePushEnable",
    ),
    _key("service_description", str, None, "Free-text description.", REQUEST, "ServiceDescription"),
    _key("model_source", str, "MODEL", "Where the model comes from.", REQUEST, "ModelSource"),
    _key("status", str, "NEW", "Service status field, as the console sends it.", REQUEST, "Status"),
)
_CREATE_ONLY_KEYS = tuple(
    _key(name, str, None, f"Kept and shown back ({wire}).", REQUEST, wire)
    for name, wire in (("catalog_path", "CatalogPath"), ("schema_path", "SchemaPath"), ("payload_path", "PayloadPath"))
)
_UPDATE_ONLY_KEYS = (
    _key(
        "service_action",
        str,
        None,
        "STOP, RESUME, or SCALE (to `replicas`); the server ignores every other change in the same call.",
        REQUEST,
        "ServiceAction",
        choices=("STOP", "RESUME", "SCALE"),
    ),
    _key(
        "service_port",
        int,
        None,
        "Port the model server listens on inside a replica.",
        REQUEST,
        "ServicePort",
        minimum=1,
        maximum=65535,
    ),
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
ENDPOINT_CREATE_KEYS = _catalogue(
    (
        _key(
            "authorization_enable",
            bool,
            False,
            "Require an auth token on the endpoint URL.",
            REQUEST,
            "AuthorizationEnable",
        ),
    )
)
ENDPOINT_UPDATE_KEYS = _catalogue(
    ENDPOINT_CREATE_KEYS.values(),
    (
        _key(
            "traffic",
            dict,
            None,
            'Weights by deployment (service id or name), shares of the traffic (0-100 each), e.g. {"iris-v1": 50, "iris-v2": 50}.',
            CLIENT,
        ),
    ),
)
RUN_LOCAL_KEYS = _catalogue(
    (
        _key("host", str, "127.0.0.1", "Address to listen on.", CLIENT),
        _key("port", int, 5000, "Port to listen on.", CLIENT, minimum=1, maximum=65535),
    ),
    [k for k in _SERVICE_KEYS if k.place == BATCH],
)


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


def convert_config(config: Mapping[str, Any] | None, keys: Mapping[str, ConfigKey], what: str) -> dict[str, Any]:
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
