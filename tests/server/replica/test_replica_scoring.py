"""A real replica process over a unix socket: every body form, every bad input, every route."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .replica_harness import IRIS_COLUMNS, split_body

ROWS = [0, 55, 110, 149]


@pytest.fixture(scope="module")
def client(forest_replica):
    with forest_replica.client() as client:
        yield client


@pytest.fixture(scope="module")
def sample(iris):
    return iris[0].iloc[ROWS].reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(forest_model, sample):
    return forest_model.predict(sample).tolist()


def body_forms(frame) -> dict[str, dict]:
    records = frame.to_dict(orient="records")
    return {
        "dataframe_split": split_body(frame),
        "dataframe_split with index": {"dataframe_split": frame.to_dict(orient="split")},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs as columns": {"inputs": frame.to_dict(orient="list")},
        "inputs as records": {"inputs": records},
        "with params": {**split_body(frame), "params": {}},
        "wedata": split_body(frame, client_request_id="req-42"),
    }


FORMS = [
    "dataframe_split",
    "dataframe_split with index",
    "dataframe_records",
    "instances",
    "inputs as columns",
    "inputs as records",
    "with params",
    "wedata",
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_every_body_form_predicts_like_the_model(client, sample, expected, form, path):
    reply = client.post(path, json=body_forms(sample)[form])
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == expected


def test_wedata_form_echoes_client_request_id(client, sample, expected):
    reply = client.post("/predict", json=split_body(sample, client_request_id="req-42"))
    assert reply.json() == {"predictions": expected, "client_request_id": "req-42"}


def test_reply_matches_mlflow_scoring_server_bytes(client, forest_model, sample):
    from mlflow.pyfunc import scoring_server

    body = json.dumps(split_body(sample))
    schema = forest_model.metadata.get_input_schema()
    mlflow_reply = scoring_server.invocations(body, "application/json", forest_model, schema)
    reply = client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert reply.content.decode() == mlflow_reply.response


def test_missing_content_type_is_read_as_json(client, sample, expected):
    reply = client.post("/predict", content=json.dumps(split_body(sample)))
    assert reply.status_code == 200
    assert reply.json()["predictions"] == expected


def test_csv_body(client, sample, expected):
    csv = sample.to_csv(index=False)
    reply = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == expected


def test_request_id_header_is_echoed(client, sample):
    reply = client.post("/predict", json=split_body(sample), headers={"X-Request-Id": "abc-123"})
    assert reply.headers["x-request-id"] == "abc-123"
    assert client.get("/nowhere", headers={"X-Request-Id": "r-9"}).headers["x-request-id"] == "r-9"


def bad_request(client, *, expect_status: int = 400, **kwargs) -> str:
    reply = client.post("/predict", **kwargs)
    assert reply.status_code == expect_status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["error_code"] == ("BAD_REQUEST" if expect_status == 400 else body["error_code"])
    assert "Traceback" not in body["message"]
    return body["message"]


def test_bad_json(client):
    message = bad_request(client, content=b'{"dataframe_split": ', headers=JSON)
    assert "not valid JSON" in message


def test_body_that_is_not_an_object(client):
    assert "got a JSON array" in bad_request(client, json=[[1, 2, 3, 4]])


def test_unknown_format_key(client):
    message = bad_request(client, json={"dataframe": {"data": [[1, 2, 3, 4]]}})
    assert "'dataframe'" in message and "dataframe_split" in message


def test_two_input_forms(client, sample):
    body = {**split_body(sample), "inputs": sample.to_dict(orient="list")}
    assert "exactly one" in bad_request(client, json=body)


def test_no_input_form(client):
    assert "found none" in bad_request(client, json={"client_request_id": "x"})


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": IRIS_COLUMNS, "data": []}},
        {"dataframe_records": []},
        {"instances": []},
        {"inputs": {}},
        {"inputs": {name: [] for name in IRIS_COLUMNS}},
    ],
)
def test_empty_data(client, body):
    assert "no rows" in bad_request(client, json=body)


def test_missing_column_is_named(client, sample):
    message = bad_request(client, json=split_body(sample.drop(columns=["petal width (cm)"])))
    assert "missing column(s) 'petal width (cm)'" in message


def test_an_extra_column_is_dropped_as_mlflow_serving_drops_it(client, sample, expected):
    # A client that sends an id along must not break: the model scores the signature's columns.
    for body in (
        split_body(sample.assign(id=range(len(sample)))),
        {"dataframe_records": sample.assign(id=7).to_dict(orient="records")},
    ):
        reply = client.post("/predict", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == expected
        assert reply.headers["warning"] == "299 tcdeploy \"column(s) 'id' are not in the model's signature: dropped\""
    assert "warning" not in client.post("/predict", json=split_body(sample)).headers


def test_missing_column_in_records_is_named(client, sample):
    records = sample.drop(columns=["sepal length (cm)"]).to_dict(orient="records")
    assert "'sepal length (cm)'" in bad_request(client, json={"dataframe_records": records})


def test_wrong_type_names_the_column(client, sample):
    frame = sample.astype(object)
    frame.loc[1, "sepal width (cm)"] = "wide"
    message = bad_request(client, json=split_body(frame))
    assert "sepal width (cm)" in message and "wide" in message


def test_error_message_does_not_echo_a_large_input(client, iris):
    frame = iris[0].astype(object)
    frame.loc[3, "petal length (cm)"] = "long"
    big = pd.concat([frame] * 20, ignore_index=True)
    message = bad_request(client, json=split_body(big))
    assert "petal length (cm)" in message
    assert len(message) < 2100


def test_rows_that_cannot_be_a_frame(client):
    body = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[1.0, 2.0]]}}
    assert "dataframe_split" in bad_request(client, json=body)


def test_params_must_be_an_object(client, sample):
    assert "'params'" in bad_request(client, json={**split_body(sample), "params": [1]})


def test_unsupported_content_type(client):
    message = bad_request(client, expect_status=415, content=b"x", headers={"content-type": "text/plain"})
    assert "text/plain" in message


def test_unknown_path_and_wrong_method_answer_json(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["error_code"] == "METHOD_NOT_ALLOWED"


def test_health_routes(client):
    for path in ("/ping", "/health"):
        reply = client.get(path)
        assert reply.status_code == 200 and reply.json() == {"status": "ok"}


def test_version(client, forest_model_dir):
    version = client.get("/version").json()
    assert version["model_uri"] == str(forest_model_dir)
    assert version["pod_name"] == "ms-test-00001"
    assert version["loader_module"] == "mlflow.sklearn"
    assert "sklearn" in version["flavors"]
    assert "sepal length (cm)" in version["signature"]
    assert version["mlflow_version"] == __import__("mlflow").__version__


def test_stats_shape(client, sample):
    client.post("/predict", json=split_body(sample))
    stats = client.get("/stats").json()
    for field in (
        "requests",
        "batches",
        "rows",
        "max_batch_rows",
        "max_batch_requests",
        "batches_retried_alone",
        "in_flight",
        "bad_requests",
        "model_errors",
        "queued",
    ):
        assert isinstance(stats[field], int), field
    assert stats["requests"] >= 1 and stats["rows"] >= len(ROWS)
    assert stats["batch_rows_buckets"][-1] == ["+Inf", stats["batches"]]


JSON = {"content-type": "application/json"}
