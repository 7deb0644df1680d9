"""What `mlflow deployments predict -I file` hands the plugin: `pandas.read_json(file)`. A file in
one of MLflow's scoring-server forms comes back as the document it held; rows stay rows."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from tcdeploy.plugin.predict import request_from_cli_frame

SPLIT = {"columns": ["a", "b"], "data": [[1.5, 2], [3.5, 4]]}
RECORDS = [{"a": 1.5, "b": 2}, {"a": 3.5, "b": 4}]


def as_the_cli_reads(document) -> pd.DataFrame:
    return pd.read_json(io.StringIO(json.dumps(document)))


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": SPLIT},
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"inputs": [[1.5, 2], [3.5, 4]]},
        {"inputs": {"a": [1.5, 3.5], "b": [2, 4]}},
        {"dataframe_split": SPLIT, "params": {"top_k": 3, "temperature": 0.5}},
    ],
)
def test_a_request_form_comes_back_as_the_document(document):
    assert request_from_cli_frame(as_the_cli_reads(document)) == document


@pytest.mark.parametrize("document", [RECORDS, {"a": [1.5, 3.5], "inputs": [2, 4]}])
def test_rows_stay_a_frame(document):
    frame = as_the_cli_reads(document)
    assert request_from_cli_frame(frame) is frame


def test_what_is_not_a_frame_passes_as_it_is():
    assert request_from_cli_frame({"inputs": [1]}) == {"inputs": [1]}
