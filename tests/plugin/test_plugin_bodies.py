"""Config conversion, model URIs, request bodies, predict payloads and key casing."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin import bodies as rq


# ---- config conversion ---------------------------------------------------------------------------

def test_cli_strings_become_typed_values():
    values = rq.convert_config({
        "replicas": "2", "authorization_enable": "true", "log_enable": "0", "wait": "False",
        "timeout": "30", "max_batch_wait_ms": "1.5", "scale_mode": "manual",
        "service_limit": '{"enable_instance_rps_limit": true, "InstanceRpsLimit": 5}',
        "instance_type": "TI.S.MICRO.POST",
    }, rq.CREATE_KEYS, "create_deployment")
    assert values == {
        "replicas": 2, "authorization_enable": True, "log_enable": False, "wait": False,
        "timeout": 30.0, "max_batch_wait_ms": 1.5, "scale_mode": "MANUAL",
        "service_limit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 5},
        "instance_type": "TI.S.MICRO.POST",
    }


def test_python_values_are_checked_not_converted():
    values = rq.convert_config({"replicas": 3, "wait": False, "timeout": 5, "service_limit": {"a_b": 1}},
                               rq.CREATE_KEYS, "create_deployment")
    assert values == {"replicas": 3, "wait": False, "timeout": 5.0, "service_limit": {"AB": 1}}


def test_none_values_are_dropped_and_none_config_is_empty():
    assert rq.convert_config({"replicas": None}, rq.CREATE_KEYS, "x") == {}
    assert rq.convert_config(None, rq.CREATE_KEYS, "x") == {}


def test_unknown_key_names_the_known_ones_and_suggests():
    with pytest.raises(MlflowException) as info:
        rq.convert_config({"replica": "2"}, rq.CREATE_KEYS, "create_deployment")
    message = str(info.value)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'replica'" in message and "did you mean 'replicas'" in message
    for known in ("instance_type", "replicas", "service_limit", "wait", "timeout", "max_batch_size"):
        assert known in message


@pytest.mark.parametrize("config, problem", [
    ({"replicas": "two"}, "not an integer"),
    ({"replicas": "1.5"}, "not an integer"),
    ({"replicas": True}, "must be a int"),
    ({"replicas": "17"}, "at most 16"),
    ({"replicas": -1}, "at least 0"),
    ({"wait": "maybe"}, "not a boolean"),
    ({"timeout": "soon"}, "not a number"),
    ({"timeout": 0}, "at least 1"),
    ({"service_limit": "{not json"}, "not valid JSON"),
    ({"service_limit": "[1, 2]"}, "must be a JSON object"),
    ({"scale_mode": "sideways"}, "MANUAL, AUTO"),
    ({"max_batch_size": 0}, "at least 1"),
    ({"max_batch_wait_ms": 5000}, "at most 1000"),
])
def test_bad_values_name_the_key_and_the_problem(config, problem):
    with pytest.raises(MlflowException) as info:
        rq.convert_config(config, rq.CREATE_KEYS, "create_deployment")
    assert problem in str(info.value) and repr(next(iter(config))) in str(info.value)


def test_update_only_keys():
    assert rq.convert_config({"service_action": "stop"}, rq.UPDATE_KEYS, "u") == {"service_action": "STOP"}
    with pytest.raises(MlflowException, match="service_action"):
        rq.convert_config({"service_action": "START"}, rq.CREATE_KEYS, "create_deployment")
    with pytest.raises(MlflowException, match="STOP, RESUME, SCALE"):
        rq.convert_config({"service_action": "PAUSE"}, rq.UPDATE_KEYS, "u")


def test_config_must_be_a_dict():
    with pytest.raises(MlflowException, match="must be a dict"):
        rq.convert_config(["replicas=2"], rq.CREATE_KEYS, "create_deployment")


def test_every_key_has_a_type_default_and_doc():
    for catalogue in (rq.CREATE_KEYS, rq.UPDATE_KEYS, rq.ENDPOINT_UPDATE_KEYS, rq.RUN_LOCAL_KEYS):
        for key in catalogue.values():
            assert key.doc and key.type_name
            assert key.default is None or isinstance(key.default, (key.type, int))
    text = rq.describe_keys(rq.CREATE_KEYS)
    assert "replicas" in text and "int, default 1" in text and "timeout" in text


# ---- model URIs -----------------------------------------------------------------------------------

def test_three_part_registry_uri():
    ref = rq.parse_model_uri("models:/main.default.iris/3")
    assert (ref.catalog, ref.schema, ref.name, ref.version, ref.path) == ("main", "default", "iris", "3", None)
    assert ref.needs_registry_lookup


def test_plain_registry_uri():
    ref = rq.parse_model_uri("models:/iris/1")
    assert (ref.catalog, ref.name, ref.version) == (None, "iris", "1")
    assert ref.needs_registry_lookup and ref.ml_model_info() == {"Name": "iris", "Version": "1"}


@pytest.mark.parametrize("uri", ["models:/iris@champion", "models:/iris/latest", "models:/a.b.c@prod"])
def test_aliases_and_stages_go_to_the_server_as_paths(uri):
    ref = rq.parse_model_uri(uri)
    assert ref.path == uri and not ref.needs_registry_lookup and ref.version is None


@pytest.mark.parametrize("uri", ["runs:/0123abcd/model", "mlflow-artifacts:/1/2/artifacts/m", "file:///tmp/m"])
def test_other_schemes_are_model_paths(uri):
    ref = rq.parse_model_uri(uri)
    assert ref.path == uri and ref.ml_model_info() == {"ModelPath": uri} and not ref.is_local_path


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = rq.parse_model_uri("models_dir/iris")
    assert ref.is_local_path and ref.path == os.path.join(str(tmp_path), "models_dir", "iris")
    assert rq.parse_model_uri("~/m").path == os.path.expanduser("~/m")


@pytest.mark.parametrize("uri, problem", [
    ("", "model_uri is required"),
    ("models:/iris", "models:/<name>/<version>"),
    ("models:/iris/1/extra", "models:/<name>/<version>"),
    ("models:/a..b/1", "empty part"),
    ("https://example.com/model.tar.gz", "scheme 'https'"),
    ("s3://bucket/model", "scheme 's3'"),
    ("runs://host/abc/model", "names a host"),
    ("/tmp/model\r\n", "control characters"),
])
def test_bad_model_uris(uri, problem):
    with pytest.raises(MlflowException) as info:
        rq.parse_model_uri(uri)
    assert problem in str(info.value) and info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_registry_properties():
    item = {"Properties": [{"Key": "tclake.mlflow.model_id", "Value": "m-1"}, {"Key": "x", "Value": 2}]}
    assert rq.registry_properties(item) == {"tclake.mlflow.model_id": "m-1", "x": "2"}


# ---- request bodies -------------------------------------------------------------------------------

def test_create_body_has_the_seeds_shape_with_defaults():
    ref = rq.ModelRef(uri="models:/c.s.iris/3", name="iris", version="3", catalog="c", schema="s",
                      path="models:/m-1", model_id="m-1")
    values = rq.convert_config({"instance_type": "TI.S.MICRO.POST", "replicas": "2",
                                "authorization_enable": "true", "max_batch_size": "8", "wait": "false"},
                               rq.CREATE_KEYS, "create_deployment")
    body = rq.build_create_request("iris", ref, values, group_id="grp-1")
    assert body == {
        "ServiceName": "iris", "ServiceAction": "START", "ServiceGroupId": "grp-1",
        "AuthorizationEnable": True, "LogEnable": False, "InferenceTablePushEnable": False,
        "ModelSource": "MODEL", "Status": "NEW",
        "Services": [{
            "InstanceType": "TI.S.MICRO.POST", "Replicas": 2, "ChargeType": "POSTPAID_BY_HOUR",
            "ScaleMode": "MANUAL", "BatchConfig": {"MaxBatchSize": 8, "MaxBatchWaitMs": 2},
            "CatalogName": "c", "SchemaName": "s",
            "MlModelInfo": {"Id": "m-1", "Name": "iris", "Version": "3", "ModelPath": "models:/m-1"},
        }],
    }


def test_update_body_is_flat_and_only_what_was_given():
    values = rq.convert_config({"replicas": "3", "service_port": "8080", "wait": "false"}, rq.UPDATE_KEYS, "u")
    assert rq.build_update_request("svc-1", None, values) == {"ServiceId": "svc-1", "Replicas": 3, "ServicePort": 8080}
    ref = rq.parse_model_uri("runs:/abc/model")
    assert rq.build_update_request("svc-1", ref, {}) == {"ServiceId": "svc-1", "MlModelInfo": {"ModelPath": "runs:/abc/model"}}


def test_service_actions():
    assert rq.build_update_request("svc-1", None, {"service_action": "STOP"}) == {"ServiceId": "svc-1", "ServiceAction": "STOP"}
    assert rq.build_update_request("svc-1", None, {"service_action": "SCALE", "replicas": 2}) == {
        "ServiceId": "svc-1", "ServiceAction": "SCALE", "Replicas": 2}
    with pytest.raises(MlflowException, match="needs config 'replicas'"):
        rq.build_update_request("svc-1", None, {"service_action": "SCALE"})
    with pytest.raises(MlflowException, match="cannot be combined with replicas"):
        rq.build_update_request("svc-1", None, {"service_action": "STOP", "replicas": 2})
    with pytest.raises(MlflowException, match="model_uri"):
        rq.build_update_request("svc-1", rq.parse_model_uri("runs:/a/m"), {"service_action": "RESUME"})


# ---- predict payloads -----------------------------------------------------------------------------

def test_dataframe_becomes_dataframe_split():
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, None]})
    assert rq.predict_payload(frame) == {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0.5], [2, None]]}}


@pytest.mark.parametrize("inputs, body", [
    ({"dataframe_records": [{"a": 1}]}, {"dataframe_records": [{"a": 1}]}),
    ({"instances": [[1, 2]]}, {"instances": [[1, 2]]}),
    ({"a": [1, 2]}, {"inputs": {"a": [1, 2]}}),
    ([[1, 2], [3, 4]], {"inputs": [[1, 2], [3, 4]]}),
    (np.array([[1.0, 2.0]]), {"inputs": [[1.0, 2.0]]}),
    (pd.Series([1, 2]), {"inputs": [1, 2]}),
    ("hello", {"inputs": "hello"}),
])
def test_other_inputs(inputs, body):
    assert rq.predict_payload(inputs) == body


def test_params_are_added_and_numpy_scalars_serialise():
    body = rq.predict_payload({"inputs": [np.int64(3)]}, params={"k": np.float32(0.5)})
    assert json.loads(rq.dumps(body)) == {"inputs": [3], "params": {"k": 0.5}}


def test_unsupported_inputs():
    with pytest.raises(MlflowException, match="inputs is required"):
        rq.predict_payload(None)
    with pytest.raises(MlflowException, match="not supported"):
        rq.predict_payload(object())
    with pytest.raises(MlflowException, match="not JSON-serializable"):
        rq.dumps({"inputs": [object()]})


# ---- casing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pascal, snake", [
    ("ServiceGroupId", "service_group_id"), ("MlModelInfo", "ml_model_info"), ("Url", "url"),
    ("ReadyReplicas", "ready_replicas"), ("TiOneRebuildServiceRequestId", "ti_one_rebuild_service_request_id"),
    ("EnableInstanceRpsLimit", "enable_instance_rps_limit"), ("Cpu", "cpu"),
])
def test_casing_round_trip(pascal, snake):
    assert rq.snake(pascal) == snake and rq.pascal(snake) == pascal and rq.pascal(pascal) == pascal


def test_snake_keys_recurses_into_lists():
    assert rq.snake_keys({"Pods": [{"PodName": "p", "Ready": True}], "A": {"BCd": 1}}) == {
        "pods": [{"pod_name": "p", "ready": True}], "a": {"b_cd": 1}}


# ---- traffic weights (update_endpoint) -------------------------------------------------------------

GROUP = {"ServiceGroupName": "iris", "Services": [
    {"ServiceId": "svc-a", "ServiceName": "iris-v1"}, {"ServiceId": "svc-b", "ServiceName": "iris-v2"}]}


def test_traffic_by_name_or_id_and_the_rest_gets_zero():
    from tcdeploy.plugin.client import traffic_weights

    assert traffic_weights(GROUP, {"iris-v1": 50, "svc-b": 50.0}) == [
        {"ServiceId": "svc-a", "Weight": 50}, {"ServiceId": "svc-b", "Weight": 50}]
    assert traffic_weights(GROUP, {"svc-a": 100}) == [
        {"ServiceId": "svc-a", "Weight": 100}, {"ServiceId": "svc-b", "Weight": 0}]


@pytest.mark.parametrize("traffic, problem", [
    ({"iris-v1": 50, "iris-v3": 50}, "'iris-v3' is not a deployment of endpoint 'iris' (its deployments: "
                                     "iris-v1 (svc-a), iris-v2 (svc-b))"),
    ({"iris-v1": 50, "svc-a": 50}, "names a deployment already given"),
    ({"iris-v1": 60, "iris-v2": 30}, "must sum to 100, not 90"),
    ({"iris-v1": float("nan"), "iris-v2": 50}, "whole percent"),
    ({"iris-v1": float("inf")}, "whole percent"),
    ({"iris-v1": True}, "whole percent"),
    ({"iris-v1": 101}, "whole percent"),
    ({}, "must be a JSON object"),
    (["iris-v1"], "must be a JSON object"),
])
def test_bad_traffic(traffic, problem):
    from tcdeploy.plugin.client import traffic_weights

    with pytest.raises(MlflowException) as info:
        traffic_weights(GROUP, traffic)
    assert problem in str(info.value)
