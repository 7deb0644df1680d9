"""The tione 2021-11-11 requests this server answers, built from the TI-ONE SDK's own models.

`tencentcloud-sdk-python-tione` declares every member of a request and of the structs in it in
its model classes' docstrings (`:type Replicas: int`, `:type Weights: list of WeightEntry`,
`:type ModelInfo: :class:`tencentcloud.tione.v20211111.models.ModelInfo``). `request_model(action)`
reads them into a pydantic model that accepts exactly those members with those types, so a
request the SDK can send is accepted and any other member is refused (`UnknownParameter`). The SDK
does not say which members are required; the official CLI's API definition of the same version
does (`REQUIRED`, checked against it by the tests). Every other member is optional (`None` when
absent) and the handlers use `required(value, "Field")` for what they cannot do without.

On top of the SDK's members, named here and in docs/wire.md:

- narrowing (`_NARROWING`): a member keeps its name and type but gets a range or a pattern the
  server enforces (`Replicas` 0–16, `Weight` 0–100, RFC 3339 times), so a bad value is refused
  naming the member;
- extensions: three actions of our own the SDK does not have (`DescribeInferenceSpecs`, which the
  seed plugin calls, `CreateModelServiceGroup`, `DescribeModelServiceMonitoring`), written by hand.

`reply_mismatches(action, reply)` checks a reply against the SDK's response model the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, create_model
from tencentcloud.tione.v20211111 import models as sdk

from .apis import NAME_PATTERN
from .effects import NO_BILLING, NO_CLS, OWN_ROLLING, OWN_RUNTIME
from .schema import WireModel
from .schema import scalar_ok as schema_scalar_ok
from .times import IsoTime
from .wedata import NAME, OFFSET, RATE, SERVICE_NARROWING, TEXT, TIME

SCALARS: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float}
_TYPE_LINE = re.compile(r":type (\w+): (.+)")
_CLASS = re.compile(r":class:`tencentcloud\.tione\.v20211111\.models\.(\w+)`")


@dataclass(frozen=True)
class Member:
    """One member of an SDK model: a scalar (`str`, `int`, `bool`, `float`) or a struct, maybe a list."""

    name: str
    type: str  # a scalar's name, or the struct's class name
    is_list: bool = False

    @property
    def is_struct(self) -> bool:
        return self.type not in SCALARS


@cache
def members(struct: str) -> tuple[Member, ...]:
    """The members an SDK model class declares, in its order (`XRequest`, `XResponse`, a struct)."""
    cls = getattr(sdk, struct, None)
    if cls is None:
        raise KeyError(f"the TI-ONE SDK has no model {struct!r}")
    out = []
    for name, declared in _TYPE_LINE.findall(cls.__init__.__doc__ or ""):
        declared = declared.strip()
        is_list = declared.startswith("list of ")
        declared = declared.removeprefix("list of ")
        found = _CLASS.fullmatch(declared)
        out.append(Member(name, found.group(1) if found else declared, is_list))
    return tuple(out)


def sdk_actions() -> set[str]:
    """Every action the SDK models (a class `<Action>Request` beside `<Action>Response`)."""
    return {n.removesuffix("Request") for n in vars(sdk) if n.endswith("Request") and hasattr(sdk, n[:-7] + "Response")}


# ---- requests --------------------------------------------------------------------------------

ORDER = Field(pattern=r"^(ASC|DESC)$")
_NARROWING: dict[str, dict[str, tuple[Any, ...]]] = {
    # structs
    "WeightEntry": {"Weight": (Field(ge=0, le=100),)},
    "Filter": {"Values": (Field(max_length=100),)},
    "ServiceLimit": {"InstanceRpsLimit": (RATE,), "InstanceReqLimit": (RATE,)},
    # A replica's size, where a service sets it: bounded as wedata bounds the same struct.
    "ResourceInfo": {"Cpu": (Field(ge=100, le=64_000),), "Memory": (Field(ge=128, le=262_144),)},
    # actions
    "CreateModelService": {"ServiceGroupName": (NAME,), **SERVICE_NARROWING},
    "ModifyModelService": dict(SERVICE_NARROWING),  # bounded as wedata bounds the same members
    "ModifyServiceGroupWeights": {"Weights": (Field(min_length=1, max_length=2),)},
    "DescribeModelServiceGroups": {
        "Offset": (OFFSET,),
        "Limit": (Field(ge=1, le=100),),
        "Order": (ORDER,),
        "OrderField": (Field(pattern=r"^(CreateTime|UpdateTime)$"),),
        "Filters": (Field(max_length=20),),
        "TagFilters": (Field(max_length=20),),
    },
    "CreateModelServiceAuthToken": {"Name": (Field(min_length=1, max_length=60),), "Description": (TEXT,)},
    "DeleteModelServiceAuthToken": {"AuthTokenValue": (Field(min_length=1, max_length=256),)},
    "DescribeEvents": {
        "Limit": (Field(ge=1, le=100),),
        "Offset": (OFFSET,),
        "Order": (ORDER,),
        "OrderField": (Field(pattern=r"^(FirstTimestamp|LastTimestamp)$"),),
        "StartTime": (TIME,),
        "EndTime": (TIME,),
    },
    "DescribeLogs": {
        "Limit": (Field(ge=1, le=1000),),
        "Offset": (OFFSET,),
        "Order": (ORDER,),
        "OrderField": (Field(pattern=r"^Timestamp$"),),
        "StartTime": (TIME,),
        "EndTime": (TIME,),
        "Context": (Field(max_length=512),),
        "LogStream": (Field(pattern=r"^(stdout|stderr)?$"),),
    },
}
# The members the API requires, as `tccli/services/tione/v20211111/api.json` marks them.
REQUIRED: dict[str, frozenset[str]] = {
    "ModifyModelService": frozenset({"ServiceId"}),
    "DescribeModelService": frozenset({"ServiceId"}),
    "DeleteModelService": frozenset({"ServiceId"}),
    "DescribeModelServiceGroup": frozenset({"ServiceGroupId"}),
    "DeleteModelServiceGroup": frozenset({"ServiceGroupId"}),
    "ModifyServiceGroupWeights": frozenset({"ServiceGroupId", "Weights"}),
    "CreateModelServiceAuthToken": frozenset({"ServiceGroupId"}),
    "DeleteModelServiceAuthToken": frozenset({"ServiceGroupId"}),
    "ModifyModelServiceAuthToken": frozenset({"ServiceGroupId"}),
    "ModifyModelServiceAuthorization": frozenset({"ServiceGroupId"}),
    "DescribeModelServiceCallInfo": frozenset({"ServiceGroupId"}),
    "DescribeEvents": frozenset({"Service"}),
    "DescribeLogs": frozenset({"Service"}),
    "DescribeBillingSpecs": frozenset({"ChargeType"}),
    "ChatCompletion": frozenset({"Model", "Messages"}),
}
# Every action's workspace: TI-ONE's name for it, bounded as wedata's `WorkspaceId` is.
_WORKSPACE = (Field(min_length=1, max_length=64),)


@cache
def _struct_model(name: str) -> type[WireModel]:
    return _build(name, members(name), _NARROWING.get(name, {}))


def _build(
    name: str, of: tuple[Member, ...], narrowed: Mapping[str, tuple[Any, ...]], required: frozenset[str] = frozenset()
) -> type[WireModel]:
    unknown = narrowed.keys() - {m.name for m in of}
    if unknown:
        raise KeyError(f"{name} has no member {sorted(unknown)} to narrow")
    fields: dict[str, Any] = {}
    for member in of:
        kind: Any = _struct_model(member.type) if member.is_struct else SCALARS[member.type]
        if member.is_list:
            kind = list[kind]
        metadata = narrowed.get(member.name, _WORKSPACE if member.name == "TiProjectId" else ())
        if metadata:
            kind = Annotated[(kind, *metadata)]
        fields[member.name] = (kind, ...) if member.name in required else (Optional[kind], None)
    return create_model(name, __base__=WireModel, **fields)


def request_model(action: str) -> type[WireModel]:
    """The request model of a TI-ONE action: exactly the SDK's `<action>Request` members."""
    return _build(action, members(f"{action}Request"), _NARROWING.get(action, {}), REQUIRED.get(action, frozenset()))


# ---- what the members do here ----------------------------------------------------------------

_BY_MODEL = "the model is found by `CosPathInfo.Paths` or `ModelName`/`ModelVersion`"
_OWN_PLACEMENT = "replicas run as processes of this machine: no resource groups, volumes or networks"
_OWN_SOCKET = "a replica answers its probes on its own socket (liveness /live, readiness /ping)"
_ONE_CATEGORY = "there is one kind of service here"
_NO_TAGS = "there are no tags here"

# Members of the service requests that are accepted, stored and shown back, but act on nothing
# here, with why (a struct's member path-wise: `ServiceLimit.InstanceReqLimit`). The list only
# shrinks. docs/wire.md shows it; a test keeps the two the same.
_PROBES = ("LivenessProbe", "ReadinessProbe", "StartupProbe")
_SERVICE_SETTINGS: dict[str, str] = {
    "ChargeType": NO_BILLING,
    "HybridBillingPrepaidReplicas": NO_BILLING,
    "ResourceGroupId": _OWN_PLACEMENT,
    "ImageInfo": OWN_RUNTIME,
    "Command": OWN_RUNTIME,
    "CommandBase64": OWN_RUNTIME,
    "PreStopCommand": OWN_RUNTIME,
    "ServicePort": OWN_RUNTIME,
    "GrpcEnable": OWN_RUNTIME,
    "Sidecar": OWN_RUNTIME,
    "InferTemplateId": OWN_RUNTIME,
    "ModelHotUpdateEnable": OWN_RUNTIME,
    "ModelTurboEnable": OWN_RUNTIME,
    "InstancePerReplicas": "a replica is one process on one machine",
    "LogConfig": NO_CLS,
    "VolumeMount": _OWN_PLACEMENT,
    "VolumeMounts": _OWN_PLACEMENT,
    "ServiceEIP": _OWN_PLACEMENT,
    "SchedulingStrategy": _OWN_PLACEMENT,
    "Priority": _OWN_PLACEMENT,
    "TerminationGracePeriodSeconds": "a stopping replica drains its requests, then stops",
    **{
        f"HealthProbe.{probe}.ProbeAction.HTTPGet.{where}": _OWN_SOCKET
        for probe in _PROBES
        for where in ("Path", "Port")
    },
    "RollingUpdate": OWN_ROLLING,
    "ModelInfo.ModelId": _BY_MODEL,
    "ModelInfo.ModelVersionId": _BY_MODEL,
    "ModelInfo.ModelSource": _BY_MODEL,
    "ModelInfo.CosPathInfo.Bucket": "`Paths` name the model's files on this machine or in MLflow",
    "ModelInfo.CosPathInfo.Region": "`Paths` name the model's files on this machine or in MLflow",
    "ModelInfo.GooseFSx": _BY_MODEL,
    "ModelInfo.PublicDataSource": _BY_MODEL,
    "ModelInfo.AlgorithmFramework": "the MLflow model says its own flavor",
    "ModelInfo.ModelType": "the MLflow model says its own flavor",
    "ModelInfo.ModelFormat": "the MLflow model says its own flavor",
    "ModelInfo.IsPrivateModel": _BY_MODEL,
    "ModelInfo.ModelCategory": _BY_MODEL,
}
NO_EFFECT: dict[str, dict[str, str]] = {
    "CreateModelService": {
        **_SERVICE_SETTINGS,
        "Tags": _NO_TAGS,
        "CreateSource": "kept and shown back",
        "CallbackUrl": "the server calls nobody back; poll `DescribeModelService`",
        "ServiceCategory": _ONE_CATEGORY,
        "DeployType": "every service is a standard deployment here",
        "GatewayLogConfig": NO_CLS,
        "GatewayConfig": "the server's own gateway routes by weight",
        "ResourceSupplyAttribute": _OWN_PLACEMENT,
    },
    "ModifyModelService": {
        **_SERVICE_SETTINGS,
        "TargetProjectId": "a service stays in its workspace",
    },
    "DescribeModelService": {"ServiceCategory": _ONE_CATEGORY},
    "DeleteModelService": {"ServiceCategory": _ONE_CATEGORY},
    "DescribeModelServiceGroup": {"ServiceCategory": _ONE_CATEGORY},
    "DescribeModelServiceGroups": {"ServiceCategory": _ONE_CATEGORY, "TagFilters": _NO_TAGS},
    "DescribeModelServiceCallInfo": {"ServiceCategory": _ONE_CATEGORY},
    "ModifyModelServiceAuthToken": {"AuthToken.Limits": "kept; the group's tokens are not rate-limited apart"},
    "DescribeBillingSpecs": {"TaskType": "every spec here is for inference"},
}


# ---- our extensions: actions the SDK does not have ---------------------------------------------


class TioneRequest(WireModel):
    TiProjectId: Optional[str] = Field(None, min_length=1, max_length=64)


class DescribeInferenceSpecs(TioneRequest):
    """The seed plugin's instance-type listing (the public API has `DescribeBillingSpecs`)."""

    SpecType: Optional[Literal["CPU", "GPU"]] = None


class CreateModelServiceGroup(TioneRequest):
    """An empty group, for MLflow's `create_endpoint` (TI-ONE makes groups only with a service)."""

    ServiceGroupName: str = Field(pattern=NAME_PATTERN)
    AuthorizationEnable: bool = False


class DescribeModelServiceMonitoring(TioneRequest):
    """A group's request figures over a window, from this server's gateway."""

    ServiceGroupId: str
    StartTime: Optional[IsoTime] = None
    EndTime: Optional[IsoTime] = None
    Step: int = Field(60, ge=1, le=3600)


EXTENSIONS: dict[str, type[WireModel]] = {
    m.__name__: m for m in (DescribeInferenceSpecs, CreateModelServiceGroup, DescribeModelServiceMonitoring)
}
# The SDK's actions this server answers (docs/wire.md says what each does).
ACTIONS = (
    "CreateModelService",
    "ModifyModelService",
    "DescribeModelService",
    "DeleteModelService",
    "DescribeModelServiceGroup",
    "DescribeModelServiceGroups",
    "DeleteModelServiceGroup",
    "ModifyServiceGroupWeights",
    "CreateModelServiceAuthToken",
    "DeleteModelServiceAuthToken",
    "ModifyModelServiceAuthToken",
    "ModifyModelServiceAuthorization",
    "DescribeModelServiceCallInfo",
    "DescribeEvents",
    "DescribeLogs",
    "DescribeBillingSpecs",
    "ChatCompletion",
)

MODELS: dict[str, type[WireModel]] = {**{a: request_model(a) for a in ACTIONS}, **EXTENSIONS}


# ---- replies ---------------------------------------------------------------------------------


def reply_mismatches(action: str, reply: Mapping[str, Any]) -> list[str]:
    """Where a reply (`Response` without `RequestId`) differs from the SDK's `<action>Response`:
    members the model does not declare and values of another type. Absent members and nulls pass:
    the SDK reads both as None."""
    problems: list[str] = []
    _check_struct(f"{action}Response", dict(reply), action, problems)
    return problems


def fit(struct: str, value: Any) -> Any:
    """`value` (a dict, or a list of dicts) with only the members the SDK's `struct` declares, at
    every depth: a setting stored from a wedata request, whose struct differs a little, shows back
    as TI-ONE's."""
    if isinstance(value, list):
        return [fit(struct, item) for item in value]
    if not isinstance(value, dict):
        return value
    declared = {m.name: m for m in members(struct)}
    return {
        name: fit(declared[name].type, item) if declared[name].is_struct else item
        for name, item in value.items()
        if name in declared
    }


def _check_struct(struct: str, value: Any, path: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: {struct} expected, got {type(value).__name__}")
        return
    declared = {m.name: m for m in members(struct)}
    for name, item in value.items():
        member = declared.get(name)
        if member is None:
            out.append(f"{path}.{name}: not a member of {struct}")
        elif item is not None:
            _check_member(member, item, f"{path}.{name}", out)


def _check_member(member: Member, value: Any, path: str, out: list[str]) -> None:
    if member.is_list:
        if not isinstance(value, list):
            out.append(f"{path}: list expected, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check_one(member, item, f"{path}.{i}", out)
    else:
        _check_one(member, value, path, out)


def _check_one(member: Member, value: Any, path: str, out: list[str]) -> None:
    if member.is_struct:
        _check_struct(member.type, value, path, out)
    elif not schema_scalar_ok("string" if member.type == "str" else member.type, value):
        out.append(f"{path}: {member.type} expected, got {type(value).__name__} {value!r:.40}")
