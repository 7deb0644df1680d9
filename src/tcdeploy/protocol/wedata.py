"""The wedata 2025-10-10 requests this server answers, built from the real schema.

Each model accepts exactly the members of the action in `protocol/schema` (types and required flags
as the schema has them). On top of that, two kinds of additions, each named here and in
docs/wire.md:

- narrowing (`_NARROWING`): a schema member keeps its name and type but gets a range or a pattern
  the server enforces (e.g. `Replicas` 0–16), so a bad value is refused naming the member;
- extensions (`_EXTENSIONS`): members of our own, never in place of a real one — `BatchConfig`
  (adaptive batching on the replica), `ServiceType` on the creates (the replies' member), and what the seed plugin 1.0.x sends to
  `ListMLModelServiceGroups` (`ServiceGroupId`, `Offset`, `Limit`).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BeforeValidator, Field

from .apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS, NAME_PATTERN
from .schema import WireModel, request_model, wedata
from .times import iso_time


class BatchConfig(WireModel):
    """Our extension: how many rows a replica merges into one predict call, and how long it waits."""

    MaxBatchSize: int = Field(DEFAULT_MAX_BATCH_ROWS, ge=1, le=8192)
    MaxBatchWaitMs: float = Field(DEFAULT_MAX_BATCH_WAIT_MS, ge=0, le=1000)


class HpaMetric(WireModel):
    """Our extension: a metric the autoscaler follows and its target, as TI-ONE's
    `HorizontalPodAutoscaler.HpaMetrics` (`Option{Name, Value}`) has them, which wedata's
    `HorizontalPodAutoscaler` lacks (the ranges are checked by the backend, naming the member)."""

    Name: str = Field(min_length=1, max_length=32)
    Value: int


def _text(value: Any) -> Any:
    # The seed plugin sends model versions as numbers; the schema's member is a string.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


NAME = Field(pattern=NAME_PATTERN)
TEXT = Field(max_length=1024)
REPLICAS = Field(ge=0, le=16)
RATE = Field(ge=0, le=100_000)
TIME = AfterValidator(iso_time)
PAGE_LIMIT = Field(ge=1, le=1000)
OFFSET = Field(ge=0)
SERVICE_NARROWING = {
    "Replicas": (REPLICAS,),
    "ServiceDescription": (TEXT,),
    "ServicePort": (Field(ge=1, le=65535),),
    "InstanceType": (Field(min_length=1, max_length=64),),
}

_NARROWING: dict[str, dict[str, tuple[Any, ...]]] = {
    # structs
    "MLModelInfo": {"ModelPath": (Field(max_length=4096),), "Version": (BeforeValidator(_text),)},
    "ServiceLimit": {"InstanceRpsLimit": (RATE,), "InstanceReqLimit": (RATE,)},
    "Filter": {"Values": (Field(max_length=100),)},
    "CreateServiceInfos": {"Replicas": (REPLICAS,), "InstanceType": SERVICE_NARROWING["InstanceType"]},
    "MLWeightEntry": {"Weight": (Field(ge=0, le=100),)},
    # A replica's size in place of its instance type's: CPU in millicores, memory in MB.
    "TiResourceInfo": {"Cpu": (Field(ge=100, le=64_000),), "Memory": (Field(ge=128, le=262_144),)},
    "ResourceInfo": {"Cpu": (Field(ge=100, le=64_000),), "Memory": (Field(ge=128, le=262_144),)},
    # actions
    "CreateMLModelServices": {
        "ServiceName": (NAME,),
        "ServiceDescription": (TEXT,),
        "Services": (Field(min_length=1, max_length=1),),
    },
    "CreateMLModelService": {"ServiceName": (NAME,), **SERVICE_NARROWING},
    "UpdateMLModelService": dict(SERVICE_NARROWING),
    "CheckDuplicateServiceName": {"ServiceName": (Field(max_length=256),)},
    "ListMLModelServiceGroups": {
        "PageNumber": (Field(ge=1),),
        "PageSize": (Field(ge=1, le=100),),
        "Filters": (Field(max_length=20),),
    },
    "ListMLServiceLogs": {
        "Limit": (PAGE_LIMIT,),
        "Offset": (OFFSET,),
        "StartTime": (TIME,),
        "EndTime": (TIME,),
        "Context": (Field(max_length=512),),
    },
    "ListModelServiceEvents": {"Limit": (PAGE_LIMIT,), "Offset": (OFFSET,), "StartTime": (TIME,), "EndTime": (TIME,)},
    "GetModelServiceMonitorData": {"StartTime": (TIME,), "EndTime": (TIME,), "Period": (Field(ge=1, le=86400),)},
    "ModelServiceInterfaceCallTest": {"CurlData": (Field(max_length=10 * 2**20),)},
    "CreateModelServiceAuthToken": {"Name": (Field(min_length=1, max_length=60),), "Description": (TEXT,)},
    "UpdateModelServiceGroup": {"Description": (TEXT,)},
    "ListModelVersions": {
        "MaxResults": (Field(pattern=r"^[0-9]{1,4}$"),),  # a string in the schema
        "PageToken": (Field(max_length=256),),  # opaque: the NextPageToken of a previous reply
    },
}

SERVICE_TYPE = (Annotated[Optional[str], Field(max_length=32)], None)
# How long the gateway waits for a replica's answer (then a 504), and a predict may run before
# the replica fails its liveness probe; absent, the server's TCDEPLOY_REQUEST_TIMEOUT.
REQUEST_TIMEOUT = (Annotated[Optional[int], Field(ge=1, le=3600)], None)
_EXTENSIONS: dict[str, dict[str, tuple[Any, Any]]] = {
    "HorizontalPodAutoscaler": {"HpaMetrics": (Optional[list[HpaMetric]], None)},
    "CreateServiceInfos": {"BatchConfig": (Optional[BatchConfig], None), "RequestTimeoutSeconds": REQUEST_TIMEOUT},
    "CreateMLModelService": {
        "BatchConfig": (Optional[BatchConfig], None),
        "ServiceType": SERVICE_TYPE,
        "RequestTimeoutSeconds": REQUEST_TIMEOUT,
    },
    # The console's 服务类型 (the replies' `ServiceType`); absent, it is read from the model.
    "CreateMLModelServices": {"ServiceType": SERVICE_TYPE},
    "UpdateMLModelService": {"BatchConfig": (Optional[BatchConfig], None), "RequestTimeoutSeconds": REQUEST_TIMEOUT},
    "ListMLModelServiceGroups": {
        "ServiceGroupId": (Optional[str], None),
        "Offset": (Annotated[Optional[int], Field(ge=0)], None),
        "Limit": (Annotated[Optional[int], Field(ge=1, le=100)], None),
    },
}

# The registry actions MLflow users need, beside every model-service action.
REGISTRY_ACTIONS = (
    "ListModelVersions",
    "GetModelVersion",
    "ListModels",
    "GetModel",
    "SearchModels",
    "UpdateModelVersionAliases",
)
ACTIONS = (*wedata().actions_of("model-service"), *REGISTRY_ACTIONS, "GetBillingSpecs")  # instance types


def _build(action: str) -> type[WireModel]:
    narrowing = _owned(_NARROWING, action)
    if any(m.name == "WorkspaceId" for m in wedata().actions[action].input):
        narrowing[action] = {"WorkspaceId": (Field(min_length=1, max_length=64),), **narrowing.get(action, {})}
    return request_model(action, narrowing=narrowing, extensions=_owned(_EXTENSIONS, action))


def _owned(table: dict[str, dict[str, Any]], action: str) -> dict[str, dict[str, Any]]:
    """The entries of `table` for `action` and for structs (keys that are not action names)."""
    schema = wedata()
    return {owner: spec for owner, spec in table.items() if owner == action or owner not in schema.actions}


MODELS: dict[str, type[WireModel]] = {action: _build(action) for action in ACTIONS}
