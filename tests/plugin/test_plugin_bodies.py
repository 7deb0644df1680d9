"""Model URIs, request bodies, traffic weights and predict payloads."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.bodies import (
    ModelRef,
    build_create_request,
    build_update_request,
    dumps,
    parse_model_uri,
    predict_payload,
    registry_properties,
    traffic_weights,
)
from tcdeploy.plugin.configkeys import CREATE_KEYS, UPDATE_KEYS, convert_config

# ---- model URIs -----------------------------------------------------------------------------------


def test_three_part_registry_uri():
    ref = parse_model_uri("models:/main.default.iris/3")
    assert (ref.catalog, ref.schema, ref.name, ref.version, ref.path) == ("main", "default", "iris", "3", None)
    assert ref.needs_registry_lookup


def test_plain_registry_uri():
    ref = parse_model_uri("models:/iris/1")
    assert (ref.catalog, ref.name, ref.version) == (None, "iris", "1")
    assert ref.needs_registry_lookup and ref.ml_model_info() == {"Name": "iris", "Version": "1"}


@pytest.mark.parametrize("uri", ["models:/iris@champion", "models:/iris/latest", "models:/a.b.c@prod"])
def test_aliases_and_stages_go_to_the_server_as_paths(uri):
    ref = parse_model_uri(uri)
    assert ref.path == uri and not ref.needs_registry_lookup and ref.version is None


@pytest.mark.parametrize("uri", ["runs:/0123abcd/model", "mlflow-artifacts:/1/2/artifacts/m", "file:///tmp/m"])
def test_other_schemes_are_model_paths(uri):
    ref = parse_model_uri(uri)
    assert ref.path == uri and ref.ml_model_info() == {"ModelPath": uri} and not ref.is_local_path


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = parse_model_uri("models_dir/iris")
    assert ref.is_local_path and ref.path == os.path.join(str(tmp_path), "models_dir", "iris")
    assert parse_model_uri("~/m").path == os.path.expanduser("~/m")


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("", "model_uri is required"),
        ("models:/iris", "models:/<name>/<version>"),
        ("models:/iris/1/extra", "models:/<name>/<version>"),
        ("models:/a..b/1", "empty part"),
        ("https://example.com/model.tar.gz", "scheme 'https'"),
        ("s3://bucket/model", "scheme 's3'"),
        ("runs://host/abc/model", "names a host"),
        ("/tmp/model\r\n", "control characters"),
    ],
)
def test_bad_model_uris(uri, problem):
    with pytest.raises(MlflowException) as info:
        parse_model_uri(uri)
    assert problem in str(info.value) and info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_registry_properties():
    item = {"Properties": [{"Key": "tclake.mlflow.model_id", "Value": "m-1"}, {"Key": "x", "Value": 2}]}
    assert registry_properties(item) == {"tclake.mlflow.model_id": "m-1", "x": "2"}


# ---- request bodies -------------------------------------------------------------------------------

# Ids as the real API makes them: a group is a bare UUID, a service <group uuid>-<n>.
GROUP_ID = "ef16f77c-fd0b-48a9-bc77-da8714f0d31e"
SVC_A, SVC_B = f"{GROUP_ID}-1", f"{GROUP_ID}-2"


def test_create_body_has_the_seeds_shape_with_defaults():
    ref = ModelRef(
        uri="models:/c.s.iris/3", name="iris", version="3", catalog="c", schema="s", path="models:/m-1", model_id="m-1"
    )
    values = convert_config(
        {
            "instance_type": "TI.S.MICRO.POST",
            "replicas": "2",
            "authorization_enable": "true",
            "max_batch_size": "8",
            "wait": "false",
        },
        CREATE_KEYS,
        "create_deployment",
    )
    body = build_create_request("iris", ref, values, group_id=GROUP_ID)
    assert body == {
        "ServiceName": "iris",
        "ServiceAction": "START",
        "ServiceGroupId": GROUP_ID,
        "NewVersion": True,
        "AuthorizationEnable": True,
        "LogEnable": False,
        "InferenceTablePushEnable": False,
        "ModelSource": "MODEL",
        "Status": "NEW",
        "Services": [
            {
                "InstanceType": "TI.S.MICRO.POST",
                "Replicas": 2,
                "ChargeType": "POSTPAID_BY_HOUR",
                "ScaleMode": "MANUAL",
                "BatchConfig": {"MaxBatchSize": 8},  # only what was asked for
                "CatalogName": "c",
                "SchemaName": "s",
                "MlModelInfo": {"Id": "m-1", "Name": "iris", "Version": "3", "ModelPath": "models:/m-1"},
            }
        ],
    }


def test_create_body_sends_batching_only_when_asked_and_a_whole_service_limit():
    ref = parse_model_uri("runs:/abc/model")
    values = convert_config(
        {
            "instance_type": "TI.S.MICRO.POST",
            "service_limit": {"enable_instance_rps_limit": True, "InstanceRpsLimit": 5},
        },
        CREATE_KEYS,
        "create_deployment",
    )
    body = build_create_request("iris", ref, values)
    assert "ServiceGroupId" not in body and "NewVersion" not in body
    (service,) = body["Services"]
    assert "BatchConfig" not in service  # tcdeploy's extension, and the defaults are the server's
    assert service["ServiceLimit"] == {  # the schema requires all four members
        "EnableInstanceRpsLimit": True,
        "InstanceRpsLimit": 5,
        "EnableInstanceReqLimit": False,
        "InstanceReqLimit": 0,
    }


def test_update_keeps_the_service_limit_members_not_named():
    current = {
        "ServiceLimit": {
            "EnableInstanceRpsLimit": True,
            "InstanceRpsLimit": 50,
            "EnableInstanceReqLimit": True,
            "InstanceReqLimit": 4,
        }
    }
    values = convert_config({"service_limit": '{"InstanceRpsLimit": 80}'}, UPDATE_KEYS, "u")
    assert build_update_request(SVC_A, None, values, current=current)["ServiceLimit"] == {
        "EnableInstanceRpsLimit": True,
        "InstanceRpsLimit": 80,
        "EnableInstanceReqLimit": True,
        "InstanceReqLimit": 4,
    }
    with pytest.raises(MlflowException, match="RpsLimit not one of"):
        build_update_request(SVC_A, None, {"service_limit": {"RpsLimit": 1}})


def test_update_body_is_flat_and_only_what_was_given():
    values = convert_config({"replicas": "3", "service_port": "8080", "wait": "false"}, UPDATE_KEYS, "u")
    assert build_update_request(SVC_A, None, values) == {"ServiceId": SVC_A, "Replicas": 3, "ServicePort": 8080}
    ref = parse_model_uri("runs:/abc/model")
    assert build_update_request(SVC_A, ref, {}) == {
        "ServiceId": SVC_A,
        "MlModelInfo": {"ModelPath": "runs:/abc/model"},
    }


def test_service_actions():
    assert build_update_request(SVC_A, None, {"service_action": "STOP"}) == {
        "ServiceId": SVC_A,
        "ServiceAction": "STOP",
    }
    assert build_update_request(SVC_A, None, {"service_action": "SCALE", "replicas": 2}) == {
        "ServiceId": SVC_A,
        "ServiceAction": "SCALE",
        "Replicas": 2,
    }
    with pytest.raises(MlflowException, match="needs config 'replicas'"):
        build_update_request(SVC_A, None, {"service_action": "SCALE"})
    with pytest.raises(MlflowException, match="cannot be combined with replicas"):
        build_update_request(SVC_A, None, {"service_action": "STOP", "replicas": 2})
    with pytest.raises(MlflowException, match="model_uri"):
        build_update_request(SVC_A, parse_model_uri("runs:/a/m"), {"service_action": "RESUME"})


# ---- predict payloads -----------------------------------------------------------------------------


def test_dataframe_becomes_dataframe_split():
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, None]})
    assert predict_payload(frame) == {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0.5], [2, None]]}}


@pytest.mark.parametrize(
    "inputs, body",
    [
        ({"dataframe_records": [{"a": 1}]}, {"dataframe_records": [{"a": 1}]}),
        ({"instances": [[1, 2]]}, {"instances": [[1, 2]]}),
        ({"a": [1, 2]}, {"inputs": {"a": [1, 2]}}),
        ([[1, 2], [3, 4]], {"inputs": [[1, 2], [3, 4]]}),
        (np.array([[1.0, 2.0]]), {"inputs": [[1.0, 2.0]]}),
        (pd.Series([1, 2]), {"inputs": [1, 2]}),
        ("hello", {"inputs": "hello"}),
    ],
)
def test_other_inputs(inputs, body):
    assert predict_payload(inputs) == body


def test_params_are_added_and_numpy_scalars_serialise():
    body = predict_payload({"inputs": [np.int64(3)]}, params={"k": np.float32(0.5)})
    assert json.loads(dumps(body)) == {"inputs": [3], "params": {"k": 0.5}}


def test_unsupported_inputs():
    with pytest.raises(MlflowException, match="inputs is required"):
        predict_payload(None)
    with pytest.raises(MlflowException, match="not supported"):
        predict_payload(object())
    with pytest.raises(MlflowException, match="not JSON-serializable"):
        dumps({"inputs": [object()]})


# ---- traffic weights (update_endpoint) -------------------------------------------------------------

GROUP = {
    "ServiceGroupName": "iris",
    "Services": [{"ServiceId": SVC_A, "ServiceName": "iris-v1"}, {"ServiceId": SVC_B, "ServiceName": "iris-v2"}],
}


def test_traffic_by_name_or_id_and_the_rest_gets_zero():
    assert traffic_weights(GROUP, {"iris-v1": 50, SVC_B: 50.0}) == [
        {"ServiceId": SVC_A, "Weight": 50},
        {"ServiceId": SVC_B, "Weight": 50},
    ]
    assert traffic_weights(GROUP, {SVC_A: 100}) == [
        {"ServiceId": SVC_A, "Weight": 100},
        {"ServiceId": SVC_B, "Weight": 0},
    ]
    # Shares, as the real API reads them: the server, not the client, says what it takes.
    assert traffic_weights(GROUP, {"iris-v1": 60, "iris-v2": 30}) == [
        {"ServiceId": SVC_A, "Weight": 60},
        {"ServiceId": SVC_B, "Weight": 30},
    ]


@pytest.mark.parametrize(
    "traffic, problem",
    [
        (
            {"iris-v1": 50, "iris-v3": 50},
            f"'iris-v3' is not a deployment of endpoint 'iris' (its deployments: iris-v1 ({SVC_A}), iris-v2 ({SVC_B}))",
        ),
        ({"iris-v1": 50, SVC_A: 50}, "names a deployment already given"),
        ({"iris-v1": float("nan"), "iris-v2": 50}, "whole number"),
        ({"iris-v1": float("inf")}, "whole number"),
        ({"iris-v1": True}, "whole number"),
        ({}, "must be a JSON object"),
        (["iris-v1"], "must be a JSON object"),
    ],
)
def test_bad_traffic(traffic, problem):
    with pytest.raises(MlflowException) as info:
        traffic_weights(GROUP, traffic)
    assert problem in str(info.value)
