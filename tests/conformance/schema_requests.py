"""Requests built from the real WeData schema: plausible ones (to be accepted) and hypothesis
strategies of every kind (to be answered well, or refused without a change of state).

Values come, in order, from the estate (`Ids`: the ids of resources the fixture made), from
`PLAUSIBLE` (what a real client sends for a member of that name), from the schema's own example
for the member, and last from the member's type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from hypothesis import strategies as st

from tcdeploy.protocol import wedata as wedata_models
from tcdeploy.protocol.effects import REPLY_EXTENSIONS
from tcdeploy.protocol.schema import Member, wedata
from tests.support.reference import WEDATA_EXAMPLES

# Every action the conformance suite drives: the reference's model-service group, the registry
# actions the server serves, and GetBillingSpecs (the issue names it; the plugin reads it).
ACTIONS: tuple[str, ...] = (*wedata().actions_of("model-service"), *wedata_models.REGISTRY_ACTIONS, "GetBillingSpecs")

# Reply members of our own, as docs/wire.md documents them (generated from protocol/effects).
EXTENSIONS = {struct: set(members) for struct, members in REPLY_EXTENSIONS.items()}

# Actions that destroy what they name: they get throwaway resources, never the estate's.
DESTRUCTIVE = {"DeleteMLModelService", "DeleteMLModelServiceGroup", "DeleteModelServiceAuthToken"}
# Actions that create services: each call gets a fresh name, and what it made is deleted after.
CREATING = {"CreateMLModelServices", "CreateMLModelService"}


@dataclass
class Ids:
    """The estate's resources, by the member names that refer to them."""

    workspace: str
    group: str
    service: str
    pod: str
    token: str
    catalog: str
    schema: str
    model: str
    version: int
    model_path: str
    names: Callable[[], str] = field(default=lambda: "conf-svc")

    def by_member(self) -> dict[str, Any]:
        return {
            "WorkspaceId": self.workspace,
            "ServiceGroupId": self.group,
            "ServiceId": self.service,
            "PodName": self.pod,
            "AuthTokenValue": self.token,
            "CatalogName": self.catalog,
            "SchemaName": self.schema,
            "ModelName": self.model,
            "ModelVersion": self.version,
            "SourceModelVersion": self.version,
        }


def _now(delta_hours: float = 0) -> str:
    return (datetime.now() + timedelta(hours=delta_hours)).strftime("%Y-%m-%dT%H:%M:%S")


def _iris_body() -> str:
    row = [5.1, 3.5, 1.4, 0.2]
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})


# What a real client sends, by member name (`Struct.Member` for a member of one struct only).
# Callables are called with the estate's ids.
PLAUSIBLE: dict[str, Any] = {
    "ServiceName": lambda ids: ids.names(),
    "ServiceDescription": "conformance",
    "Description": "conformance",
    "Comment": "conformance",
    "ChargeType": "POSTPAID_BY_HOUR",
    "GetBillingSpecs.ChargeType": "POSTPAID_BY_HOUR",
    "GetBillingSpecs.TaskType": "INFERENCE",
    "GetBillingSpecs.ResourceType": "CALC",
    "InstanceType": "TI.S.MICRO.POST",
    "ScaleMode": "MANUAL",
    "Replicas": 0,  # no replica process: cheap, and nothing to wait for
    "ServicePort": 8501,
    "Command": "",
    "ModelSource": "MODEL",
    "MlModelInfo": lambda ids: {"Name": ids.model, "Version": str(ids.version), "ModelPath": ids.model_path},
    "ImageInfo": None,  # a serving image: this server serves MLflow models only
    "ServiceType": "MACHINE_LEARNING",
    "PageNumber": 1,
    "PageSize": 10,
    "MaxResults": 10,
    "PageToken": "",
    "Limit": 10,
    "Offset": 0,
    "Context": "",
    "Key": "",
    "Order": "DESC",
    "OrderField": "CreateTime",
    "ListMLModelServiceGroups.OrderField": {"Name": "CreateTime", "Direction": "DESC"},
    "ListMLModelServiceGroups.Filters": lambda ids: [{"Name": "ServiceGroupId", "Values": [ids.group]}],
    "ListModelServiceEvents.Filters": [{"Name": "Type", "Values": ["Normal"]}],
    "ListModelServiceEvents.OrderField": "LastTimestamp",
    "ListMLServiceLogs.OrderField": "Timestamp",  # the schema's gloss: only Timestamp
    "ListModelServiceEvents.ResourceName": lambda ids: ids.pod,
    "JobCategory": "",
    "Service": "INFER",
    "StartTime": lambda ids: _now(-1),
    "EndTime": lambda ids: _now(0.1),
    "MetricName": "Requests",  # the reference names no metric; the server's first
    "Period": 60,
    "Instances": None,
    "RelativeUrl": "/predict",
    "CurlData": lambda ids: _iris_body(),
    "Name": "conf-token",
    "CreateModelServiceAuthToken.Name": lambda ids: ids.names(),
    "NeedReset": False,
    "AuthToken": lambda ids: {"Base": {"Value": ids.token, "Description": "conformance"}},
    "AuthorizationEnable": False,
    "LogEnable": False,
    "InferenceTablePushEnable": False,
    "InferenceTableCollectionEnabled": False,
    "ClsDeliveryEnabled": False,
    "NewVersion": False,
    "WeightEntries": lambda ids: [{"ServiceId": ids.service, "Weight": 100}],
    "AddedAliases": ["conformance"],
    "RemovedAliases": [],
    "FetchOption": {},
    "Filter": "",
    "Owner": "",
    "Status": None,  # state, not a setting: the server decides it
    "ServiceAction": None,  # changes what the call means; the action tests drive it themselves
    "CatalogPath": "",
    "SchemaPath": "",
    "PayloadPath": "",
    "WeDataRegion": "ap-guangzhou",
    "CosRegion": "ap-guangzhou",
    "ResourceGroupId": None,  # a TI-ONE resource group: there are none here
    "InferenceTableCosBucket": "",
    "Env": [{"Name": "CONFORMANCE", "Value": "1"}],
    "Services": lambda ids: [
        {
            "InstanceType": PLAUSIBLE["InstanceType"],
            "Replicas": 0,
            "ChargeType": PLAUSIBLE["ChargeType"],
            "MlModelInfo": PLAUSIBLE["MlModelInfo"](ids),
        }
    ],
}

# Members a request needs in practice beyond the schema's required ones (the real API's docs call
# them mandatory; without them the call can do nothing).
ESSENTIAL: dict[str, tuple[str, ...]] = {
    "CreateMLModelServices": ("ServiceName", "Services"),
    "CreateMLModelService": ("InstanceType", "Replicas", "MlModelInfo", "ServiceGroupId"),
    "CheckDuplicateServiceName": ("ServiceName",),
    "DeleteMLModelService": ("ServiceId",),
    "DeleteMLModelServiceGroup": ("ServiceGroupId",),
    "DeleteModelServiceAuthToken": ("AuthTokenValue",),
    "GetMLModelService": ("ServiceId",),
    "GetMLModelServiceGroup": ("ServiceGroupId",),
    "GetModelServiceCallInfo": ("ServiceGroupId",),
    "GetServiceGroupMonitorConfig": ("ServiceGroupId",),
    "UpdateServiceGroupMonitorConfig": ("ServiceGroupId",),
    "ListMLServiceLogs": ("ServiceId",),
    "ListModelServiceEvents": ("ServiceId",),
    "ModelServiceInterfaceCallTest": ("ServiceGroupId", "CurlData"),
    "UpdateServiceGroupWeights": ("WeightEntries",),
    "UpdateModelServiceAuthorization": ("AuthorizationEnable",),
    "UpdateModelServiceAuthToken": ("AuthToken",),
    "UpdateModelServiceGroup": ("Description",),
}
# The one-member-of-each-kind call per action sends WorkspaceId too (the real client always does).
ALWAYS = ("WorkspaceId",)


@cache
def _examples() -> dict[tuple[str, str], str]:
    """The schema's example value of each member, by (owner, member)."""
    raw = json.loads(resources.files("tcdeploy.protocol.schema").joinpath("wedata-2025-10-10.json").read_text("utf-8"))
    found: dict[tuple[str, str], str] = {}
    owners = [(n, a.get("input") or ()) for n, a in raw["actions"].items()]
    owners += [(n, s.get("members") or ()) for n, s in raw["structs"].items()]
    for owner, members in owners:
        for m in members:
            if m.get("example") not in (None, ""):
                found[(owner, m["name"])] = m["example"]
    return found


def _from_example(member: Member, text: str) -> Any:
    try:
        if member.type == "int":
            return int(text)
        if member.type == "float":
            return float(text)
        if member.type == "bool":
            return text.lower() == "true"
        if member.type == "list":
            value = json.loads(text)
            return value if isinstance(value, list) else None
    except ValueError:
        return None
    return text if member.type == "string" else None


_TYPE_DEFAULT: dict[str, Any] = {"string": "conformance", "int": 1, "float": 1.0, "bool": False}


def plausible_value(owner: str, member: Member, ids: Ids, depth: int = 0) -> Any:
    """A value a real client would send for `owner.member`, or None to leave the member out."""
    estate = ids.by_member()
    for key in (f"{owner}.{member.name}", member.name):
        if key in PLAUSIBLE:
            value = PLAUSIBLE[key]
            return _as_schema_type(member, value(ids) if callable(value) else value)
    if member.name in estate and depth == 0:
        return _as_schema_type(member, estate[member.name])
    example = _examples().get((owner, member.name))
    if example is not None:
        value = _from_example(member, example)
        if value is not None:
            return value
    if member.type in _TYPE_DEFAULT:
        return _TYPE_DEFAULT[member.type]
    if depth >= 3:
        return None
    if member.struct and member.struct in wedata().structs:
        inner = plausible_struct(member.struct, ids, depth + 1)
        return [inner] if member.type == "list" else inner
    if member.type == "list":
        return [_TYPE_DEFAULT.get(member.item or "string", "conformance")]
    return {}


def _as_schema_type(member: Member, value: Any) -> Any:
    """A number where the schema says string is sent as the schema says (`MaxResults` is a string
    in ListModelVersions, an int in ListModels)."""
    if member.type == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def plausible_struct(struct: str, ids: Ids, depth: int = 0) -> dict[str, Any]:
    values = {m.name: plausible_value(struct, m, ids, depth) for m in wedata().struct(struct)}
    return {k: v for k, v in values.items() if v is not None}


def minimal_request(action: str, ids: Ids) -> dict[str, Any]:
    """The schema's required members, what the call needs in practice, and the workspace."""
    wanted = set(ESSENTIAL.get(action, ())) | set(ALWAYS)
    return _request(action, ids, lambda m: m.required or m.name in wanted)


def full_request(action: str, ids: Ids) -> dict[str, Any]:
    """Every member of the action, each with a plausible value (members PLAUSIBLE maps to None
    are left out: they change what the call means, or name things this server has none of)."""
    return _request(action, ids, lambda m: True)


def _request(action: str, ids: Ids, keep: Callable[[Member], bool]) -> dict[str, Any]:
    members = [m for m in wedata().actions[action].input if keep(m)]
    values = {m.name: plausible_value(action, m, ids) for m in members}
    return {k: v for k, v in values.items() if v is not None}


# ---- examples ------------------------------------------------------------------------------

EXAMPLES_DIR = WEDATA_EXAMPLES  # beside the repository, as CI lays shared/


def example_request(action: str, request: dict[str, Any], ids: Ids) -> dict[str, Any]:
    """A published request with the estate's ids in place of the cloud's, and in the estate's
    workspace (a published call that leaves `WorkspaceId` out means the caller's default one)."""
    out = substitute(request, ids)
    if "WorkspaceId" in members_of(action):
        out.setdefault("WorkspaceId", ids.workspace)
    return out


def substitute(value: Any, ids: Ids, owner: str | None = None) -> Any:
    """`value` with the ids (and names, models, workspaces) of the estate in place of the cloud's."""
    if isinstance(value, list):
        return [substitute(v, ids, owner) for v in value]
    if not isinstance(value, dict):
        return value
    estate = ids.by_member()
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "MlModelInfo":
            out[key] = PLAUSIBLE["MlModelInfo"](ids)
        elif key == "ServiceName":
            out[key] = ids.names()
        elif key == "InstanceType":
            out[key] = PLAUSIBLE["InstanceType"]
        elif key in estate and not isinstance(item, (dict, list)):
            out[key] = estate[key]
        else:
            out[key] = substitute(item, ids, key)
    return out


# ---- hypothesis strategies -------------------------------------------------------------------

_SCALAR_STRATEGIES: dict[str, st.SearchStrategy] = {
    "string": st.text(max_size=40),
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
}
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Anything a careless or hostile client might put where a member goes.
GARBAGE = st.one_of(
    _JSON,
    # A huge string (built, not drawn character by character: hypothesis caps drawn sizes).
    st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=3), st.integers(10_000, 300_000)),
    st.just("\x00\u202e' OR 1=1 --"),
    st.just(2**70),  # an int no int64 holds
    st.sampled_from(["", " ", "null", "../../etc/passwd", "%s%s%s", "{{7*7}}"]),
)


def right_type(member: Member, ids: Ids, owner: str, depth: int = 0) -> st.SearchStrategy:
    """A value of the member's schema type (sometimes the estate's own id or a plausible value)."""
    known = plausible_value(owner, member, ids)
    options = [_typed(member, ids, depth)]
    if known is not None:
        options.append(st.just(known))
    return st.one_of(options)


def _typed(member: Member, ids: Ids, depth: int) -> st.SearchStrategy:
    if member.type in _SCALAR_STRATEGIES:
        return _SCALAR_STRATEGIES[member.type]
    if member.struct and member.struct in wedata().structs and depth < 2:
        inner = struct_strategy(member.struct, ids, depth + 1)
        return st.lists(inner, max_size=3) if member.type == "list" else inner
    if member.type == "list":
        return st.lists(_SCALAR_STRATEGIES.get(member.item or "string", st.text(max_size=10)), max_size=4)
    return st.dictionaries(st.text(max_size=8), _JSON, max_size=3)


# Members whose valid values cost what two cores cannot spare (a replica process each): only
# values that start none, or that no parser accepts.
COSTLY: dict[str, st.SearchStrategy] = {
    "Replicas": st.one_of(
        st.just(0), st.integers(max_value=-1), st.integers(min_value=17), st.just("many"), st.just([1])
    ),
}


def _member(member: Member, ids: Ids, owner: str, depth: int = 0) -> st.SearchStrategy:
    """A member's value: of its type (twice as likely) or garbage."""
    if member.name in COSTLY:
        return COSTLY[member.name]
    typed = right_type(member, ids, owner, depth)
    return st.one_of(typed, typed, GARBAGE)


def struct_strategy(struct: str, ids: Ids, depth: int = 0) -> st.SearchStrategy:
    members = wedata().struct(struct)
    return st.fixed_dictionaries({}, optional={m.name: _member(m, ids, struct, depth) for m in members})


def any_request(action: str, ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    """Requests of every kind: wild ones (each member present or not, of its type or garbage,
    maybe members the action does not have) and, twice as often, nearly valid ones (a plausible
    request with a few members changed or left out), which reach the handler's own checks."""
    return st.one_of(wild_request(action, ids), near_valid_request(action, ids), near_valid_request(action, ids))


def wild_request(action: str, ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    members = wedata().actions[action].input
    optional = {m.name: _member(m, ids, action) for m in members}
    unknown = st.dictionaries(st.sampled_from(["Foo", "serviceId", "Offset ", "Data", "__proto__"]), _JSON, max_size=2)
    return st.tuples(st.fixed_dictionaries({}, optional=optional), unknown).map(lambda t: {**t[0], **t[1]})


def near_valid_request(action: str, ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    members = wedata().actions[action].input

    @st.composite
    def build(draw) -> dict[str, Any]:
        request = dict(draw(st.sampled_from([minimal_request(action, ids), full_request(action, ids)])))
        for member in draw(st.lists(st.sampled_from(members), min_size=1, max_size=3, unique_by=lambda m: m.name)):
            if draw(st.booleans()) and member.name in request:
                del request[member.name]
            else:
                request[member.name] = draw(_member(member, ids, action))
        return request

    return build()


def refused_request(action: str, ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    """A request that must be refused, with the estate's real ids in it: the plausible request
    with one member the action does not have, or without a required member, or one member of a
    type no lax parser turns into the schema's."""
    base = minimal_request(action, ids)
    members = wedata().actions[action].input
    kinds = [st.builds(lambda k, v: {**base, k: v}, st.sampled_from(["Foo", "ServiceID", "Extra"]), _JSON)]
    required = [m.name for m in members if m.required]
    if required:
        kinds.append(st.sampled_from(required).map(lambda name: {k: v for k, v in base.items() if k != name}))
    kinds.append(st.sampled_from(members).flatmap(lambda m: st.just(m).map(lambda m: {**base, m.name: _wrong(m)})))
    return st.one_of(kinds)


def _wrong(member: Member) -> Any:
    """A value of a type no lax parser accepts for the member."""
    if member.type in ("object", "list"):
        return "not-a-" + member.type
    return {"nested": ["garbage", {"deeper": None}]}


def members_of(action: str) -> Mapping[str, Member]:
    return {m.name: m for m in wedata().actions[action].input}
