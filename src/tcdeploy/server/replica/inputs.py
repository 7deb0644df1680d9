"""Scoring request bodies: parse them, check them against the model's signature, merge them.

A body becomes a `ScoringRequest`: which MLflow input form it uses, the raw JSON under that form,
its row count, and a batch key. Requests with equal batch keys can be merged into one `predict`
call: they use the same form, the same columns in the same order, the same Python value types per
row (so pandas infers the same dtypes for the merged frame as for each alone) and the same params.

Turning a (merged) payload into model input is left to MLflow's own parsers, so a batch sees
exactly what `mlflow models serve` would have built for one request holding all of its rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
import orjson
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import parse_csv_input
from mlflow.types import DataType, Schema
from mlflow.utils.proto_json_utils import (
    cast_df_types_according_to_schema,
    dataframe_from_parsed_json,
    parse_tf_serving_input,
)

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
CSV = "csv"
FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
_TOP_LEVEL_FIELDS = frozenset({*FORMATS, "params", "client_request_id"})
_FORMAT_LIST = ", ".join(f"'{name}'" for name in FORMATS)
_SPLIT_FIELDS = frozenset({"columns", "data", "index"})
_MAX_NAMES_IN_MESSAGE = 20
_MAX_WARNED_SETS = 100  # a client sending ever new columns must not grow the memory of them
_logger = logging.getLogger(__name__)
# Casting these does more than `astype` (base64 decoding, datetime parsing, pandas' string
# dtypes), so frames with such columns always go through MLflow's cast.
_CAST_DOES_MORE = frozenset({DataType.binary, DataType.datetime, DataType.string})


class BadRequest(Exception):
    """The request cannot be scored as sent; the message says why, in the caller's terms."""


@dataclass(slots=True)
class ScoringRequest:
    kind: str
    payload: Any
    params: dict[str, Any] | None
    client_request_id: str | int | None
    rows: int
    batch_key: Hashable | None  # None: this request is scored alone
    dropped: tuple = ()  # columns the signature does not name, which the model leaves out


@dataclass(slots=True)
class _Shape:
    rows: int
    columns: list | None = None  # column names the caller sent, when the form names them
    key: Hashable | None = None
    # Records that do not all name the same columns: a column some record lacks would reach the
    # model as a null, so each record is checked against the signature on its own.
    ragged: list[list] | None = None


class RequestParser:
    """Parses bodies for one model: knows its signature and how many rows a batch may hold."""

    def __init__(self, schema: Schema | None, *, type_hint_signature: bool, max_batch_rows: int):
        self.schema = schema
        self._type_hint_signature = type_hint_signature
        self._max_batch_rows = max_batch_rows
        named = schema is not None and schema.has_input_names()
        self._known = frozenset(schema.input_names()) if named else None
        self._names = list(schema.input_names()) if named else []
        self._required = list(schema.required_input_names()) if named else []
        self._plain_dtypes = _plain_dtypes(schema) if named else None
        # Required columns of one scalar value a row: name -> its type, as the signature says.
        self._required_scalars = {
            spec.name: spec.type.name
            for spec in (schema.inputs if named else ())
            if spec.required and isinstance(spec.type, DataType)
        }
        self._warned: set[tuple] = set()  # sets of unknown columns already logged

    def parse_json(self, body: bytes) -> ScoringRequest:
        document = _load_json(body)
        kind, payload = _pick_form(document)
        params = _params_of(document)
        client_request_id = _client_request_id_of(document)
        if self._type_hint_signature:
            # MLflow hands such models the raw "inputs" value; there is nothing to merge on.
            if kind != INPUTS:
                raise BadRequest(
                    f"this model's signature comes from type hints: send its input under 'inputs', not '{kind}'"
                )
            return ScoringRequest(kind, payload, params, client_request_id, 1, None)
        shape = _SHAPERS[kind](payload, self._max_batch_rows)
        if shape.rows == 0:
            raise BadRequest(f"'{kind}' holds no rows: send at least one row to score")
        dropped: tuple = ()
        if shape.columns is not None:
            dropped = self.check_columns(shape.columns)
        for i, keys in enumerate(shape.ragged or ()):
            try:
                dropped += tuple(c for c in self.check_columns(keys) if c not in dropped)
            except BadRequest as refused:
                raise BadRequest(f"record {i}: {refused}") from None
        if self._required:
            self._refuse_nulls(kind, payload, shape)
        key = None
        if shape.key is not None:
            params_key = None if params is None else json.dumps(params, sort_keys=True)
            key = (kind, shape.key, params_key)
        return ScoringRequest(kind, payload, params, client_request_id, shape.rows, key, dropped)

    def parse_csv(self, body: bytes) -> ScoringRequest:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"CSV body is not valid UTF-8: {exc}") from None
        if not text.strip():
            raise BadRequest("CSV body is empty: send a header line and at least one row")
        return ScoringRequest(CSV, text, None, None, 1, None)

    def check_columns(self, columns: Iterable) -> tuple:
        """Refuse missing required columns; let columns the signature does not name pass.

        MLflow's own serving drops such columns (an id a client sends along must not break the
        call) and logs a warning; the model's ``predict`` does the dropping here too, and the
        warning goes to the replica's log once per set of columns, not once per request. Returns
        those columns, for the reply to name.
        """
        if self._known is None:
            return ()
        present = set(columns)
        missing = [name for name in self._required if name not in present]
        if missing:
            raise BadRequest(
                f"input does not match the model's signature: missing column(s) {_quote_names(missing)}. "
                f"The signature's columns are {_quote_names(self._names)}"
            )
        unknown = tuple(name for name in _unique(columns) if name not in self._known)
        if unknown and unknown not in self._warned and len(self._warned) < _MAX_WARNED_SETS:
            self._warned.add(unknown)
            _logger.warning(
                "column(s) %s are not in the model's signature: they are dropped, as MLflow's serving does",
                _quote_names(list(unknown)),
            )
        return unknown

    def _refuse_nulls(self, kind: str, payload: Any, shape: _Shape) -> None:
        """A null where the signature requires a value is the caller's mistake, whatever the model
        would make of it (sklearn raises on the NaN it becomes, and that read as the model's own
        500). Optional columns pass nulls through."""
        found = _first_null(kind, payload, shape, self._required)
        if found is not None:
            column, row = found
            raise BadRequest(
                f"column '{column}' is required by the model's signature, but row {row} holds null: "
                "send a value (or make the column optional in the signature)"
            )

    def to_model_input(self, kind: str, payload: Any) -> Any:
        """Build what `PyFuncModel.predict` takes, with MLflow's own parsers."""
        if self._type_hint_signature:
            return payload
        try:
            if kind == CSV:
                data = parse_csv_input(StringIO(payload), schema=self.schema)
            elif kind in (DF_SPLIT, DF_RECORDS):
                data = self._dataframe(kind, payload)
            else:
                data = parse_tf_serving_input({kind: payload}, schema=self.schema)
        except MlflowException as exc:
            raise BadRequest(exc.message) from None
        except Exception as exc:  # pandas/numpy refusing the shape or values the caller sent
            raise BadRequest(f"'{kind}' cannot be read: {type(exc).__name__}: {exc}") from None
        if self._required_scalars:
            self._refuse_missing_values(data)
        return data

    def _refuse_missing_values(self, data: Any) -> None:
        """A required scalar column with no value in some row, however it lost it (a null, or a
        value such as `[]` that the cast to the signature's type left empty): the caller's
        mistake, never the model's 500. MLflow hands a frame, or (for `instances`/`inputs`) a
        dict of arrays, one a column."""
        if isinstance(data, pd.DataFrame):
            columns = {name: data[name].to_numpy() for name in self._required_scalars if name in data.columns}
        elif isinstance(data, dict):
            columns = {name: np.asarray(data[name]) for name in self._required_scalars if name in data}
        else:
            return
        for name, values in columns.items():
            if values.ndim != 1:
                raise BadRequest(
                    f"column '{name}' must hold one value per row (the model's signature makes it a "
                    f"{self._required_scalars[name]}); got an array of shape {values.shape}"
                )
            missing = pd.isna(values)
            if missing.any():
                raise BadRequest(
                    f"column '{name}' is required by the model's signature, but row {int(missing.argmax())} "
                    "holds no value (a null, or a value its type cannot hold, read as missing)"
                )

    def _dataframe(self, kind: str, payload: Any):
        """`dataframe_from_parsed_json`, minus its casting pass when that would change nothing.

        The cast is most of the parsing cost of a small request, and for numeric or boolean
        columns that already have the signature's dtype it only copies them.
        """
        orient = "split" if kind == DF_SPLIT else "records"
        frame = dataframe_from_parsed_json(payload, pandas_orient=orient, schema=None)
        if self.schema is None or self._already_cast(frame):
            return frame
        return cast_df_types_according_to_schema(frame, self.schema)

    def _already_cast(self, frame) -> bool:
        if self._plain_dtypes is None:
            return False
        present = dict(zip(frame.columns, frame.dtypes))
        return all(present.get(name, dtype) == dtype for name, dtype in self._plain_dtypes.items())


def _plain_dtypes(schema: Schema) -> dict[str, Any] | None:
    """Column name -> pandas dtype when every column is a numeric or boolean type."""
    dtypes = {}
    for spec in schema.inputs:
        if not isinstance(spec.type, DataType) or spec.type in _CAST_DOES_MORE:
            return None
        dtypes[spec.name] = spec.type.to_pandas()
    return dtypes


def merge_payloads(requests: list[ScoringRequest]) -> Any:
    """One payload holding every request's rows in order; all requests share one batch key."""
    first = requests[0]
    if len(requests) == 1:
        return first.payload
    if first.kind == DF_SPLIT:
        rows: list = []
        for request in requests:
            rows.extend(request.payload["data"])
        return {"columns": first.payload["columns"], "data": rows}
    if isinstance(first.payload, list):
        rows = []
        for request in requests:
            rows.extend(request.payload)
        return rows
    # `inputs` given as columns: concatenate each column
    merged = {name: [] for name in first.payload}
    for request in requests:
        for name, values in request.payload.items():
            merged[name].extend(values)
    return merged


def _load_json(body: bytes) -> dict:
    # orjson refuses what we refuse (NaN, Infinity, numbers that overflow a double) at a tenth of
    # the cost of the standard parser with hooks; a body it refuses is parsed again the standard
    # way, so bad JSON gets the same message as ever (and integers past 64 bits still parse).
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _load_json_slowly(body)
    if not isinstance(document, dict):
        raise BadRequest(
            f"request body must be a JSON object holding one of {_FORMAT_LIST}; got a JSON {_json_type(document)}"
        )
    return document


def _load_json_slowly(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is not valid JSON: nested too deeply") from None


def _refuse_constant(token: str) -> float:
    # Python's json takes NaN and Infinity; JSON does not, and models choke on them mid-predict.
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf - inf is nan: a number too large for a double
        raise ValueError(f"{text[:40]} is out of range for a double")
    return value


def _pick_form(document: dict) -> tuple[str, Any]:
    unknown = [key for key in document if key not in _TOP_LEVEL_FIELDS]
    if unknown:
        raise BadRequest(
            f"unknown field(s) {_quote_names(unknown)}: a request body holds one of "
            f"{_FORMAT_LIST}, optionally with 'params' and 'client_request_id'"
        )
    kinds = [kind for kind in FORMATS if kind in document]
    if len(kinds) != 1:
        found = "none" if not kinds else _quote_names(kinds)
        raise BadRequest(f"a request body holds exactly one of {_FORMAT_LIST}; found {found}")
    return kinds[0], document[kinds[0]]


def _params_of(document: dict) -> dict | None:
    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRequest(f"'params' must be a JSON object; got a JSON {_json_type(params)}")
    return params or None


def _client_request_id_of(document: dict) -> str | int | None:
    value = document.get("client_request_id")
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value
    raise BadRequest(f"'client_request_id' must be a string; got a JSON {_json_type(value)}")


def _shape_split(payload: Any, max_batch_rows: int) -> _Shape:
    if not isinstance(payload, dict):
        raise BadRequest(f"'{DF_SPLIT}' must be an object with 'columns' and 'data'; got a JSON {_json_type(payload)}")
    unknown = [key for key in payload if key not in _SPLIT_FIELDS]
    if unknown:
        raise BadRequest(
            f"'{DF_SPLIT}' has unknown field(s) {_quote_names(unknown)}; it takes 'columns', 'data' and 'index'"
        )
    data = payload.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"'{DF_SPLIT}.data' must be a list of rows; got {_json_type(data)}")
    columns = payload.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise BadRequest(f"'{DF_SPLIT}.columns' must be a list of column names")
    named = columns is not None and all(isinstance(name, str) for name in columns)
    shape = _Shape(len(data), columns if named else None)
    # An index can change what a model sees, so only index-free frames are merged.
    if named and "index" not in payload and len(data) <= max_batch_rows:
        width = len(columns)
        if all(type(row) is list and len(row) == width for row in data):
            shape.key = (tuple(columns), frozenset(_row_signature(row) for row in data))
    return shape


def _shape_records(payload: Any, max_batch_rows: int) -> _Shape:
    if not isinstance(payload, list):
        raise BadRequest(f"'{DF_RECORDS}' must be a list of records (objects); got a JSON {_json_type(payload)}")
    return _shape_row_list(payload, max_batch_rows)


def _shape_tf_serving(payload: Any, max_batch_rows: int) -> _Shape:
    if isinstance(payload, list):
        return _shape_row_list(payload, max_batch_rows)
    if isinstance(payload, dict):
        return _shape_columns(payload, max_batch_rows)
    return _Shape(1)  # a single value: MLflow decides what it means for this model


def _shape_row_list(rows: list, max_batch_rows: int) -> _Shape:
    if rows and all(type(row) is dict for row in rows):
        first_keys = tuple(rows[0])
        same_keys = all(tuple(row) == first_keys for row in rows)
        columns = list(first_keys) if same_keys else _unique(key for row in rows for key in row)
        shape = _Shape(len(rows), columns, ragged=None if same_keys else [list(row) for row in rows])
        if same_keys and len(rows) <= max_batch_rows:
            types = frozenset(tuple(map(_value_signature, row.values())) for row in rows)
            shape.key = ("records", first_keys, types)
        return shape
    shape = _Shape(len(rows))
    if len(rows) <= max_batch_rows and not any(type(row) is dict for row in rows):
        shape.key = ("values", frozenset(map(_value_signature, rows)))
    return shape


def _shape_columns(columns: dict, max_batch_rows: int) -> _Shape:
    values = list(columns.values())
    if not values:
        return _Shape(0, [])
    if not all(type(column) is list for column in values):
        return _Shape(1, list(columns))  # one row of scalars (or tensors): not merged
    lengths = {len(column) for column in values}
    shape = _Shape(max(lengths), list(columns))
    if len(lengths) == 1 and shape.rows <= max_batch_rows:
        types = tuple(frozenset(map(_value_signature, column)) for column in values)
        # A nested list could be one row's array rather than many rows: never merge those.
        if not any(isinstance(signature, tuple) for column in types for signature in column):
            shape.key = ("columns", tuple(columns), types)
    return shape


def _first_null(kind: str, payload: Any, shape: _Shape, required: list[str]) -> tuple[str, int] | None:
    """(column, row) of the first null in a required column, in the forms that name columns."""
    if kind == DF_SPLIT and shape.columns is not None:
        if shape.key is not None and not any(NONE in signature for signature in shape.key[1]):
            return None  # the row signatures already say no cell is null
        at = {name: i for i, name in enumerate(shape.columns) if name in required}
        for row_number, row in enumerate(payload["data"]):
            for name, i in at.items():
                if type(row) is list and i < len(row) and row[i] is None:
                    return name, row_number
    elif type(payload) is list:
        for row_number, row in enumerate(payload):
            if type(row) is dict:
                for name in required:
                    if name in row and row[name] is None:
                        return name, row_number
    elif type(payload) is dict and shape.columns is not None:
        for name in required:
            column = payload.get(name)
            values = column if type(column) is list else [column]
            if name in payload and None in values:
                return name, values.index(None)
    return None


NONE = type(None)


def _row_signature(row: list) -> tuple:
    flat = tuple(map(type, row))  # one C-level pass: rows of plain values are the usual case
    return tuple(map(_value_signature, row)) if list in flat else flat


def _value_signature(value: Any) -> Hashable:
    """The Python types in a value, nested lists included: what pandas/numpy infer dtypes from."""
    if type(value) is list:
        return tuple(map(_value_signature, value))
    return type(value)


_SHAPERS = {
    DF_SPLIT: _shape_split,
    DF_RECORDS: _shape_records,
    INSTANCES: _shape_tf_serving,
    INPUTS: _shape_tf_serving,
}


def _unique(names: Iterable) -> list:
    return list(dict.fromkeys(name for name in names if isinstance(name, Hashable)))


def _quote_names(names: list) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:_MAX_NAMES_IN_MESSAGE])
    hidden = len(names) - _MAX_NAMES_IN_MESSAGE
    return shown + (f" and {hidden} more" if hidden > 0 else "")


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
