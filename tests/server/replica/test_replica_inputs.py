"""Body parsing: forms, row counts, batch keys, merging, and what is refused before predicting."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema
from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

from tcdeploy.server.replica.inputs import BadRequest, RequestParser, merge_payloads

SCHEMA = Schema([ColSpec("double", "a"), ColSpec("double", "b"), ColSpec("long", "c", required=False)])


def parser(schema=SCHEMA, type_hints=False, max_rows=32) -> RequestParser:
    return RequestParser(schema, type_hint_signature=type_hints, max_batch_rows=max_rows)


def parse(body, **kwargs):
    return parser(**kwargs).parse_json(json.dumps(body).encode())


def refused(body, **kwargs) -> str:
    with pytest.raises(BadRequest) as error:
        parse(body, **kwargs)
    return str(error.value)


@pytest.mark.parametrize(
    "body, rows",
    [
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]] * 3}}, 3),
        ({"dataframe_records": [{"a": 1.0, "b": 2.0}] * 2}, 2),
        ({"instances": [{"a": 1.0, "b": 2.0}]}, 1),
        ({"inputs": {"a": [1.0, 2.0], "b": [3.0, 4.0]}}, 2),
        ({"inputs": [{"a": 1.0, "b": 2.0}] * 4}, 4),
    ],
)
def test_every_form_counts_its_rows_and_can_be_batched(body, rows):
    request = parse(body)
    assert request.rows == rows
    assert request.batch_key is not None


def split(columns, rows, **extra):
    return {"dataframe_split": {"columns": columns, "data": rows}, **extra}


def test_batch_keys_separate_what_must_not_be_merged():
    key = parse(split(["a", "b"], [[1.0, 2.0]])).batch_key
    assert parse(split(["a", "b"], [[5.0, 6.0], [7.0, 8.0]])).batch_key == key
    assert parse(split(["a", "b"], [[1.0, 2.0]], client_request_id="x")).batch_key == key
    assert parse(split(["b", "a"], [[1.0, 2.0]])).batch_key != key  # column order
    assert parse(split(["a", "b"], [[1, 2.0]])).batch_key != key  # int would infer another dtype
    assert parse(split(["a", "b"], [[1.0, 2.0]], params={"k": 1})).batch_key != key
    assert parse({"dataframe_records": [{"a": 1.0, "b": 2.0}]}).batch_key != key


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]], "index": [7]}},
        {"dataframe_records": [{"a": 1.0, "b": 2.0}, {"b": 2.0, "a": 1.0}]},
        {"inputs": {"a": [[1.0, 2.0]], "b": [[3.0, 4.0]]}},
        {"inputs": {"a": 1.0, "b": 2.0}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]] * 33}},
    ],
)
def test_requests_that_could_change_meaning_when_merged_go_alone(body):
    assert parse(body).batch_key is None


def test_merged_payload_parses_to_the_concatenated_frame():
    schema_parser = parser()
    requests = [
        schema_parser.parse_json(json.dumps(split(["a", "b"], rows)).encode())
        for rows in ([[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]])
    ]
    merged = merge_payloads(requests)
    assert merged == {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}
    frame = schema_parser.to_model_input("dataframe_split", merged)
    assert frame.to_dict(orient="list") == {"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, 6.0]}


def test_merging_lists_and_columns():
    records = [parse({"inputs": [{"a": 1.0, "b": 2.0}]}), parse({"inputs": [{"a": 3.0, "b": 4.0}]})]
    assert merge_payloads(records) == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    columns = [parse({"inputs": {"a": [a], "b": [b]}}) for a, b in ((1.0, 2.0), (3.0, 4.0))]
    assert merge_payloads(columns) == {"a": [1.0, 3.0], "b": [2.0, 4.0]}


@pytest.mark.parametrize(
    "payload",
    [
        {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]},  # ints: the cast to double is needed
        {"columns": ["a", "b", "c"], "data": [[1.5, 2.5, 3]]},  # already the signature's dtypes
    ],
)
def test_frames_equal_mlflows_own_parsing(payload):
    ours = parser().to_model_input("dataframe_split", payload)
    theirs = dataframe_from_parsed_json(payload, pandas_orient="split", schema=SCHEMA)
    pd.testing.assert_frame_equal(ours, theirs)


def test_missing_columns_are_named_and_unknown_ones_pass_with_a_warning(caplog):
    message = refused(split(["b", "x"], [[1.0, 2.0]]))
    assert "missing column(s) 'a'" in message and "'x'" not in message
    assert "'c'" in message  # the signature's columns are listed
    parse(split(["a", "b"], [[1.0, 2.0]]))  # the optional column may be left out
    # As MLflow's serving: a column the signature does not name is dropped (by the model's
    # predict), with a warning in the replica's log, once per set of such columns.
    one = parser()
    with caplog.at_level("WARNING", logger="tcdeploy.server.replica.inputs"):
        for _ in range(3):
            request = one.parse_json(json.dumps(split(["a", "b", "id"], [[1.0, 2.0, 3]])).encode())
            assert request.rows == 1 and request.dropped == ("id",)  # for the reply to name
    assert [r.getMessage() for r in caplog.records] == [
        "column(s) 'id' are not in the model's signature: they are dropped, as MLflow's serving does"
    ]


@pytest.mark.parametrize(
    "body, words",
    [
        ([1, 2], "got a JSON array"),
        ({"rows": []}, "unknown field(s) 'rows'"),
        ({}, "found none"),
        ({"dataframe_split": {"data": []}, "inputs": []}, "exactly one"),
        ({"dataframe_split": [[1.0, 2.0]]}, "must be an object"),
        ({"dataframe_split": {"data": [], "rows": 1}}, "unknown field(s) 'rows'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": {}}}, "list of rows"),
        ({"dataframe_split": {"columns": "a", "data": []}}, "list of column names"),
        ({"dataframe_records": {"a": [1.0]}}, "list of records"),
        ({"dataframe_records": []}, "no rows"),
        ({"inputs": [], "params": "x"}, "'params' must be a JSON object"),
        ({"inputs": [1.0], "client_request_id": {"id": 1}}, "'client_request_id' must be a string"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body, words):
    assert words in refused(body)


def test_invalid_json_and_bad_csv():
    with pytest.raises(BadRequest, match="not valid JSON"):
        parser().parse_json(b"{nope")
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        parser().parse_csv(b"\xff\xfe")
    with pytest.raises(BadRequest, match="CSV body is empty"):
        parser().parse_csv(b"  \n")


def test_type_hint_models_take_inputs_only():
    request = parse({"inputs": ["hello", "world"]}, type_hints=True)
    assert request.batch_key is None and request.payload == ["hello", "world"]
    assert "'inputs'" in refused({"dataframe_records": [{"a": 1}]}, type_hints=True)


def test_without_a_signature_columns_are_not_checked():
    request = parse(split(["anything"], [[1]]), schema=None)
    assert request.rows == 1 and request.batch_key is not None


def test_a_record_lacking_a_required_column_is_refused_not_scored_as_a_null():
    # The union of the records' keys has every column; the first record alone has none.
    message = refused({"dataframe_records": [{}, {"a": 0.0, "b": 0.0}]})
    assert message.startswith("record 0:") and "missing column(s) 'a', 'b'" in message
    assert "record 1" in refused({"dataframe_records": [{"a": 1.0, "b": 2.0}, {"a": 1.0}]})
    # An optional column may be absent from some records.
    assert parse({"dataframe_records": [{"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0, "c": 3}]}).rows == 2


@pytest.mark.parametrize(
    "body, column, row",
    [
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [1.0, None]]}}, "b", 1),
        ({"dataframe_split": {"columns": ["b", "a"], "data": [[None, 1.0]]}}, "b", 0),
        ({"dataframe_records": [{"a": None, "b": 2.0}]}, "a", 0),
        ({"instances": [{"a": 1.0, "b": 2.0}, {"a": 1.0, "b": None}]}, "b", 1),
        ({"inputs": {"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0]}}, "a", 1),
        ({"inputs": {"a": None, "b": 1.0}}, "a", 0),
    ],
)
def test_a_null_in_a_required_column_is_refused_naming_the_column_and_row(body, column, row):
    message = refused(body)
    assert f"column '{column}' is required" in message and f"row {row} holds null" in message


def test_a_null_in_an_optional_column_passes_through():
    assert parse({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, None]]}}).rows == 1
    assert parse({"dataframe_records": [{"a": 1.0, "b": 2.0, "c": None}]}).rows == 1
    assert parse({"inputs": {"a": [1.0], "b": [2.0], "c": [None]}}).rows == 1


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"instances": [{"a": 0.0, "b": []}]}, "column 'b' must hold one value per row"),
        ({"instances": [{"a": 0.0, "b": [1.0, 2.0]}]}, "column 'b' must hold one value per row"),
        ({"inputs": {"a": [0.0, 1.0], "b": [[], []]}}, "column 'b' must hold one value per row"),
    ],
    ids=["empty-list", "two-values", "columns-of-lists"],
)
def test_a_required_value_that_is_not_one_per_row_is_refused_naming_the_column(body, said):
    request_parser = parser()
    request = request_parser.parse_json(json.dumps(body).encode())
    with pytest.raises(BadRequest, match=said):
        request_parser.to_model_input(request.kind, request.payload)
