"""The real WeData 2025-10-10 API schema, and what is built from it.

`wedata-2025-10-10.json` beside this file is the transcription of the official Tencent Cloud CLI's
API definition (`tccli/services/wedata/v20251010/api.json`) kept in `shared/reference/`: every action
with its request and reply members, and the structs they use. From it come

- `request_model(action)`: a pydantic model that accepts exactly the action's members, with the
  schema's types and required flags (our extensions added explicitly, never in place of a member);
- `reply_mismatches(action, reply)`: where a reply's members or types differ from the schema's.

The transcription left a few structs out (`unresolved_structs`); `SUPPLEMENT` gives them from the
same API definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, create_model

SCALARS: dict[str, type] = {"string": str, "int": int, "bool": bool, "float": float}


@dataclass(frozen=True)
class Member:
    name: str
    type: str  # string, int, bool, float, object, list
    struct: str | None = None  # of an object, or of a list's items
    item: str | None = None  # a list's scalar item type
    required: bool = False

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> Member:
        return cls(raw["name"], raw["type"], raw.get("struct"), raw.get("item_type"), bool(raw.get("required")))


@dataclass(frozen=True)
class Action:
    name: str
    group: str  # model-service, model-registry, adjacent
    input: tuple[Member, ...]
    output: tuple[Member, ...]

    @property
    def data_struct(self) -> str | None:
        """The struct of `Response.Data` (every wedata reply puts its payload there)."""
        return next((m.struct for m in self.output if m.name == "Data"), None)


# Structs the transcription references but did not copy, as the API definition has them.
SUPPLEMENT: dict[str, tuple[Member, ...]] = {
    "OrderField": (Member("Name", "string"), Member("Direction", "string")),
    "KVPair": (Member("Key", "string"), Member("Value", "string")),
    "BooleanRsp": (Member("Status", "bool"),),
    "SuccessRsp": (Member("Status", "bool"),),
    "FetchOption": (
        Member("FetchPermissions", "bool"),
        Member("FetchFeatureTableDetail", "bool"),
        Member("FilterPermissions", "list", item="string"),
        Member("FetchOwners", "bool"),
        Member("FetchUserInfo", "bool"),
        Member("FetchMask", "bool"),
        Member("FetchTags", "bool"),
    ),
    "PermissionDetail": (Member("Permissions", "list", item="string"), Member("CatalogWorkspacePrivilege", "string")),
    "RunFileInfo": (Member("Path", "string"), Member("IsDir", "bool"), Member("FileSize", "int")),
    "IngressPrivateLinkInfo": (
        Member("VpcId", "string"),
        Member("SubnetId", "string"),
        Member("InnerHttpAddr", "list", item="string"),
        Member("InnerHttpsAddr", "list", item="string"),
        Member("State", "string"),
    ),
    "RunMetric": (
        Member("Key", "string"),
        Member("Value", "float"),
        Member("Timestamp", "string"),
        Member("Step", "string"),
    ),
    "RunMetricData": (
        Member("RunId", "string"),
        Member("MetricName", "string"),
        Member("RunMetrics", "list", struct="RunMetric"),
    ),
}


class Schema:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.api_version: str = raw["api_version"]
        self.actions = {
            name: Action(
                name,
                spec.get("group", ""),
                tuple(Member.read(m) for m in spec.get("input") or ()),
                tuple(Member.read(m) for m in spec.get("output") or ()),
            )
            for name, spec in raw["actions"].items()
        }
        self.structs = {name: tuple(Member.read(m) for m in spec["members"]) for name, spec in raw["structs"].items()}
        for name, members in SUPPLEMENT.items():
            self.structs.setdefault(name, members)

    def actions_of(self, group: str) -> list[str]:
        return sorted(name for name, action in self.actions.items() if action.group == group)

    def struct(self, name: str) -> tuple[Member, ...]:
        try:
            return self.structs[name]
        except KeyError:
            raise KeyError(f"the schema has no struct {name!r}") from None


@cache
def wedata() -> Schema:
    text = resources.files(__package__).joinpath("wedata-2025-10-10.json").read_text(encoding="utf-8")
    return Schema(json.loads(text))


# ---- requests --------------------------------------------------------------------------------


class WireModel(BaseModel):
    """A request or a struct in it: unknown members are refused, so a typo is never silent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Extensions = Mapping[str, Mapping[str, tuple[Any, Any]]]
Narrowing = Mapping[str, Mapping[str, tuple[Any, ...]]]


def request_model(
    action: str, *, extensions: Extensions | None = None, narrowing: Narrowing | None = None, base: type = WireModel
) -> type[WireModel]:
    """The request model of a wedata action.

    `extensions[owner]` adds members of our own to the request (owner = the action's name) or to a
    struct (owner = the struct's name), as `{name: (annotation, default)}`. `narrowing[owner]`
    adds metadata (a pydantic `Field(ge=…)`, a validator) to a schema member's type, which stays
    the schema's, as do its name and required flag.
    """
    schema = wedata()
    extensions, narrowing = extensions or {}, narrowing or {}
    built: dict[str, type[WireModel]] = {}

    def build(name: str, members: tuple[Member, ...], owner_base: type) -> type[WireModel]:
        fields: dict[str, Any] = {}
        narrowed = narrowing.get(name, {})
        unknown = narrowed.keys() - {m.name for m in members}
        if unknown:
            raise KeyError(f"{name} has no member {sorted(unknown)} to narrow")
        for member in members:
            fields[member.name] = _field(member, narrowed.get(member.name, ()))
        for name_, spec in extensions.get(name, {}).items():
            if name_ in fields:
                raise KeyError(f"{name}.{name_} is a member of the schema; an extension may not replace it")
            fields[name_] = spec
        return create_model(name, __base__=owner_base, **fields)

    def struct_model(name: str) -> type[WireModel]:
        if name not in built:
            built[name] = WireModel  # a placeholder while building (recursive structs)
            built[name] = build(name, schema.struct(name), WireModel)
        return built[name]

    def annotation(member: Member) -> Any:
        if member.struct and member.struct not in schema.structs:
            # Referenced but not transcribed: any object, until SUPPLEMENT gives its members.
            return list[dict[str, Any]] if member.type == "list" else dict[str, Any]
        if member.type == "object":
            return struct_model(member.struct) if member.struct else dict[str, Any]
        if member.type == "list":
            if member.struct:
                return list[struct_model(member.struct)]
            return list[SCALARS.get(member.item or "string", str)]
        return SCALARS[member.type]

    def _field(member: Member, metadata: tuple[Any, ...]) -> tuple[Any, Any]:
        kind = annotation(member)
        if metadata:
            kind = Annotated[(kind, *metadata)]
        return (kind, ...) if member.required else (Optional[kind], None)

    return build(action, schema.actions[action].input, base)


# ---- replies ---------------------------------------------------------------------------------


def reply_mismatches(action: str, data: Any, *, extensions: Mapping[str, set[str]] | None = None) -> list[str]:
    """Where `data` (a reply's `Response.Data`) differs from the schema: members the schema does not
    have (unless named in `extensions[struct]`) and values of another type. Absent members and
    nulls are allowed: the real API omits and nulls members freely."""
    schema = wedata()
    struct = schema.actions[action].data_struct
    if struct is None:
        return [] if data is None else [f"{action}: the schema has no Data, the reply has {type(data).__name__}"]
    problems: list[str] = []
    _check_struct(schema, struct, data, "Data", extensions or {}, problems)
    return problems


def _check_struct(schema: Schema, struct: str, value: Any, path: str, extra: Mapping[str, set[str]], out: list) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        out.append(f"{path}: {struct} expected, got {type(value).__name__}")
        return
    members = {m.name: m for m in schema.struct(struct)}
    for name, item in value.items():
        member = members.get(name)
        if member is None:
            if name not in extra.get(struct, set()):
                out.append(f"{path}.{name}: not a member of {struct}")
            continue
        _check_member(schema, member, item, f"{path}.{name}", extra, out)


def _check_member(schema: Schema, member: Member, value: Any, path: str, extra, out: list) -> None:
    if value is None:
        return
    if member.type == "object":
        if member.struct:
            _check_struct(schema, member.struct, value, path, extra, out)
        elif not isinstance(value, dict):
            out.append(f"{path}: object expected, got {type(value).__name__}")
    elif member.type == "list":
        if not isinstance(value, list):
            out.append(f"{path}: list expected, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            if member.struct:
                _check_struct(schema, member.struct, item, f"{path}.{i}", extra, out)
            elif not scalar_ok(member.item or "string", item):
                out.append(f"{path}.{i}: {member.item} expected, got {type(item).__name__}")
    elif not scalar_ok(member.type, value):
        out.append(f"{path}: {member.type} expected, got {type(value).__name__} {value!r:.40}")


def scalar_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)
