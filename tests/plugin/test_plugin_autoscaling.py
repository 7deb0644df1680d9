"""The plugin's `autoscaling` config: the wire's `HorizontalPodAutoscaler` with TI-ONE's metric
names, and `ScaleMode` AUTO unless `scale_mode` says otherwise; create and update alike."""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.bodies import ModelRef, build_create_request, build_update_request
from tcdeploy.plugin.configkeys import CREATE_KEYS, UPDATE_KEYS, convert_config

AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 4,
    "metrics": {"concurrency-util": 4, "cpu-util": 70},
    "scale_up_window": 0,
    "scale_down_window": 120,
}
HPA = {
    "MinReplicas": 1,
    "MaxReplicas": 4,
    "HpaMetrics": [{"Name": "concurrency-util", "Value": 4}, {"Name": "cpu-util", "Value": 70}],
    "ScaleUpStabilizationWindowSeconds": 0,
    "ScaleDownStabilizationWindowSeconds": 120,
}
MODEL = ModelRef("runs:/abc/model", path="/models/m")


def test_create_with_autoscaling_is_scale_mode_auto_with_the_wires_autoscaler():
    values = convert_config({"autoscaling": AUTOSCALING, "replicas": 2}, CREATE_KEYS, "create_deployment")
    service = build_create_request("tidal", MODEL, values)["Services"][0]
    assert service["HorizontalPodAutoscaler"] == HPA
    assert (service["ScaleMode"], service["ScaleStrategy"], service["Replicas"]) == ("AUTO", "HPA", 2)


def test_update_takes_autoscaling_as_a_json_string_too():
    values = convert_config({"autoscaling": json.dumps(AUTOSCALING)}, UPDATE_KEYS, "update_deployment")
    body = build_update_request("svc-1", None, values)
    assert body["HorizontalPodAutoscaler"] == HPA and body["ScaleMode"] == "AUTO"


def test_a_scale_mode_given_is_kept():
    values = convert_config({"autoscaling": AUTOSCALING, "scale_mode": "MANUAL"}, CREATE_KEYS, "create_deployment")
    service = build_create_request("tidal", MODEL, values)["Services"][0]
    assert service["ScaleMode"] == "MANUAL" and "ScaleStrategy" not in service


def test_an_unknown_autoscaling_key_is_refused_naming_the_known_ones():
    values = convert_config({"autoscaling": {"max": 4}}, CREATE_KEYS, "create_deployment")
    with pytest.raises(MlflowException, match="max_replicas"):
        build_create_request("tidal", MODEL, values)
