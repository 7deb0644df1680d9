"""Hypothesis strategies for request bodies, read off each action's pydantic model.

Fields are drawn valid-ish (their type, within their bounds, ids from a pool of real ones), and
a spoiled body has one field that is junk (wrong types, huge or negative numbers, huge or odd
unicode strings, nested junk) or missing, or an unknown field; some bodies are not an object, or
not JSON at all.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

TIME_FIELDS = {"StartTime", "EndTime", "ScheduleStopTime"}
MODEL_PATHS = [
    "/no/such/model",
    "file:///no/such/model",
    "models:/fuzz-missing/1",
    "models:/fuzz-missing@champion",
    "models:/fuzzmodel/999",
    "relative/dir",
    "http://169.254.169.254/latest",
    "s3://bucket/model",
    "runs:/0123456789abcdef/model",
    "",
    "/",
    "/etc",
]


@dataclass(frozen=True)
class Pool:
    """Real values the valid-ish draws pick from, so requests get past the lookups."""

    workspace: str
    references: dict[str, tuple[str, ...]]  # field name -> real values for it
    instance_types: tuple[str, ...]


# ---- junk ------------------------------------------------------------------------------------------

# Strings that have broken parsers before: other scripts' digits, more digits than int() reads,
# dates at the ends of datetime's range, names of ids without the id.
TRICKY_TEXT = [
    "",
    " ",
    "\x00",
    "null",
    "NaN",
    "-1",
    "1e999",
    "../../etc/passwd",
    "*",
    "[",
    "%s%n",
    "${x}",
    "' OR 1=1 --",
    "٣",
    "²",
    "9" * 5000,
    "svc-",
    "grp-",
    "ms-",
    "tok-",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-14:00",
    "W10=",
    "WzEsMiwzXQ==",
]
_odd_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),  # lone surrogates
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "So", "Lo", "Mn"]), max_size=20),
    st.sampled_from(TRICKY_TEXT),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(1_000, 300_000)),  # huge strings
)
_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**200),
    st.integers(min_value=-(2**200), max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 2**53 + 1, 2**64]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _odd_text)
junk = st.recursive(
    _scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(_odd_text, kids, max_size=4)),
    max_leaves=10,
)


def _times() -> st.SearchStrategy[str]:
    moments = st.datetimes(timezones=st.one_of(st.none(), st.timezones()))
    return st.one_of(
        moments.map(lambda d: d.isoformat()),
        st.sampled_from(
            [
                "0001-01-01T00:00:00",
                "9999-12-31T23:59:59+14:00",
                "1970-01-01T00:00:00Z",
                "2026-13-40",
                "now",
            ]
        ),
    )


# ---- valid-ish, from the model ---------------------------------------------------------------------


def _bounds(field) -> dict[str, Any]:
    found = {}
    for item in field.metadata:
        for name in ("ge", "le", "gt", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _valid_ish(name: str, annotation: Any, bounds: dict, pool: Pool) -> st.SearchStrategy:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [_valid_ish(name, a, bounds, pool) for a in args if a is not type(None)]
        return st.one_of(*inner, st.none())
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(_valid_ish(name, args[0], {}, pool), max_size=min(bounds.get("max_length", 3), 3))
    if origin is dict or annotation is dict:
        return st.dictionaries(st.text(max_size=8), junk, max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_body(annotation, pool)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low, high = bounds.get("ge", -5), bounds.get("le", 10**6)
        return st.integers(low, high) | st.sampled_from([low, high])
    if annotation is float:
        return st.floats(bounds.get("ge", -1e6), bounds.get("le", 1e6), allow_nan=False)
    return _valid_text(name, bounds, pool)


def _valid_text(name: str, bounds: dict, pool: Pool) -> st.SearchStrategy[str]:
    if name in ("WorkspaceId", "TiProjectId"):
        return st.just(pool.workspace)
    if name == "InstanceType":
        return st.sampled_from(pool.instance_types)
    if name == "ModelPath":
        return st.sampled_from(MODEL_PATHS)
    if name in TIME_FIELDS:
        return _times()
    if name == "CurlData":
        return st.one_of(st.just('{"inputs": [[1, 2, 3, 4]]}'), junk.map(lambda v: json.dumps(v)))
    if name == "RelativeUrl":
        return st.sampled_from(["/predict", "/invocations", "/ping", "../../x", ""])
    plain = (
        st.from_regex(bounds["pattern"], fullmatch=True)
        if "pattern" in bounds
        else st.one_of(st.text(max_size=min(bounds.get("max_length", 40), 40)), st.sampled_from(TRICKY_TEXT))
    )
    if pool.references.get(name):
        real = st.sampled_from(pool.references[name])
        return st.one_of(real, real, real, plain)
    return plain


@st.composite
def model_body(draw, model: type[BaseModel], pool: Pool, spoil: bool | None = None) -> dict:
    """A body for `model`: every field valid-ish (optional ones sometimes left out) except, when
    spoiled, one field that is junk or missing, or an unknown field added."""
    names = list(model.model_fields)
    if spoil is None:
        spoil = draw(st.integers(0, 2)) == 0  # nested bodies are spoiled now and then
    bad = draw(st.sampled_from([*names, "<unknown field>"])) if spoil else None
    body = {}
    for name, field in model.model_fields.items():
        if name == bad:
            if draw(st.booleans()):
                body[name] = draw(junk)
            continue  # left out: for a required field, that is the spoiling
        if field.is_required() or name in ("WorkspaceId", "TiProjectId") or draw(st.booleans()):
            body[name] = draw(_valid_ish(name, field.annotation, _bounds(field), pool))
    if bad == "<unknown field>":
        body[draw(_odd_text)] = draw(junk)
    return body


def request_bytes(model: type[BaseModel], pool: Pool) -> st.SearchStrategy[bytes]:
    """A whole body: mostly a JSON object from the model; sometimes not an object, or not JSON."""
    fine = model_body(model, pool, spoil=False).map(_no_replicas).map(_dumps)
    spoiled = model_body(model, pool, spoil=True).map(_no_replicas).map(_dumps)
    others = st.one_of(
        junk.map(_dumps),
        st.binary(max_size=64),
        st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.sampled_from(
            [
                b"",
                b"{",
                b'{"WorkspaceId": NaN}',
                b"\xff\xfe{}",
                b'{"a": 1, "a": 2}',
                b"null",
                b'{"Limit": ' + b"9" * 5000 + b"}",
                b'{"Limit": 1e999}',
            ]
        ),
    )
    return st.integers(0, 9).flatmap(lambda pick: fine if pick < 4 else spoiled if pick < 8 else others)


def _no_replicas(body: dict) -> dict:
    """A replica count the server would take becomes 0: a create or update that passes must not
    start replicas (the point is the refusals; starting processes would only make it slow)."""
    services = body.get("Services")
    specs = [s for s in services if isinstance(s, dict)] if isinstance(services, list) else []
    for spec in specs:
        spec.setdefault("Replicas", 0)  # a service spec's default is 1
    for target in (body, *specs):
        if "Replicas" in target and _as_int(target["Replicas"]) not in (None, 0):
            target["Replicas"] = 0
    return body


_INT = TypeAdapter(int)


def _as_int(value: Any) -> int | None:
    try:
        return _INT.validate_python(value)  # as leniently as the server reads it ("1", 1.0, True)
    except ValidationError:
        return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# ---- a deterministic sweep: every field of a simple valid body, set to each tricky value ---------------

SWEEP_TEXT = ["", "\x00", "٣", "²", "9" * 5000, "0001-01-01T00:00:00", "W10=", "[", "ms-*"]
SWEEP_NUMBERS = [-1, 0, 2**63, 2**64 + 1, 1e308, float("nan"), float("inf"), True, "٣"]
SWEEP_SHAPES = [None, {}]
_WORKSPACE_FIELDS = ("WorkspaceId", "TiProjectId")


def base_body(model: type[BaseModel], pool: Pool) -> dict:
    """The simplest valid-ish body: the required fields (and the workspace), from the pool."""
    return {
        name: _simplest(name, field.annotation, _bounds(field), pool)
        for name, field in model.model_fields.items()
        if field.is_required() or name in _WORKSPACE_FIELDS
    }


def _simplest(name: str, annotation: Any, bounds: dict, pool: Pool) -> Any:
    annotation = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return args[0]
    if origin is list:
        return [_simplest(name, args[0], {}, pool)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        body = base_body(annotation, pool)
        if name == "MlModelInfo":  # one is needed; a missing one refuses a create at its last check
            body["ModelPath"] = MODEL_PATHS[0]
        return body
    if annotation in (bool, int, float):
        return annotation(bounds.get("ge", 1))
    if pool.references.get(name):
        return pool.references[name][0]
    simple = {
        "WorkspaceId": pool.workspace,
        "TiProjectId": pool.workspace,
        "InstanceType": pool.instance_types[0],
        "ModelPath": MODEL_PATHS[0],
        "CurlData": "{}",
        "RelativeUrl": "/predict",
    }
    return simple.get(name, "fuzz-name" if "pattern" in bounds else "x")


def sweep(model: type[BaseModel], pool: Pool) -> list[tuple[str, bytes]]:
    """(field path, body) for every field of the model and of the models it holds, each set to
    every tricky value of its kind on top of `base_body`."""
    cases = []
    for path, annotation in _field_paths(model):
        for value in _tricky_for(annotation):
            body = base_body(model, pool)
            _set(body, path, value, pool, model)
            cases.append((".".join(map(str, path)), _dumps(_no_replicas(body))))
    return cases


def _field_paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    paths = []
    for name, field in model.model_fields.items():
        annotation = _unwrap(field.annotation)
        paths.append(((*prefix, name), annotation))
        inner = _unwrap(typing.get_args(annotation)[0]) if typing.get_origin(annotation) is list else annotation
        index = (0,) if inner is not annotation else ()
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths += _field_paths(inner, (*prefix, name, *index))
    return paths


def _unwrap(annotation: Any) -> Any:
    """The type inside Optional[...] and Annotated[...]."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _tricky_for(annotation: Any) -> list:
    if annotation in (int, float, bool):
        return SWEEP_NUMBERS + SWEEP_SHAPES
    if annotation is str or typing.get_origin(annotation) is Literal:
        return SWEEP_TEXT + SWEEP_SHAPES
    return SWEEP_SHAPES + [[{}], "x"]


def _set(body: dict, path: tuple, value: Any, pool: Pool, model: type[BaseModel]) -> None:
    """Set body[path] = value, making the containers on the way (from the models) as needed."""
    target: Any = body
    current: Any = model
    for step in path[:-1]:
        if isinstance(step, int):
            current = _unwrap(typing.get_args(current)[0])
            target = target[step]
            continue
        annotation = _unwrap(current.model_fields[step].annotation)
        if step not in target:
            target[step] = _simplest(step, annotation, {}, pool)
        target, current = target[step], annotation
    target[path[-1]] = value
