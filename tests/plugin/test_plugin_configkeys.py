"""Config keys: CLI strings and Python values to typed, checked values; the catalogue's docs."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.configkeys import (
    CREATE_KEYS,
    ENDPOINT_UPDATE_KEYS,
    RUN_LOCAL_KEYS,
    UPDATE_KEYS,
    convert_config,
    describe_keys,
)

# ---- config conversion ---------------------------------------------------------------------------


def test_cli_strings_become_typed_values():
    values = convert_config(
        {
            "replicas": "2",
            "authorization_enable": "true",
            "log_enable": "0",
            "wait": "False",
            "timeout": "30",
            "max_batch_wait_ms": "1.5",
            "scale_mode": "manual",
            "service_limit": '{"enable_instance_rps_limit": true, "InstanceRpsLimit": 5}',
            "instance_type": "TI.S.MICRO.POST",
        },
        CREATE_KEYS,
        "create_deployment",
    )
    assert values == {
        "replicas": 2,
        "authorization_enable": True,
        "log_enable": False,
        "wait": False,
        "timeout": 30.0,
        "max_batch_wait_ms": 1.5,
        "scale_mode": "MANUAL",
        "service_limit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 5},
        "instance_type": "TI.S.MICRO.POST",
    }


def test_python_values_are_checked_not_converted():
    values = convert_config(
        {"replicas": 3, "wait": False, "timeout": 5, "service_limit": {"a_b": 1}}, CREATE_KEYS, "create_deployment"
    )
    assert values == {"replicas": 3, "wait": False, "timeout": 5.0, "service_limit": {"AB": 1}}


def test_none_values_are_dropped_and_none_config_is_empty():
    assert convert_config({"replicas": None}, CREATE_KEYS, "x") == {}
    assert convert_config(None, CREATE_KEYS, "x") == {}


def test_unknown_key_names_the_known_ones_and_suggests():
    with pytest.raises(MlflowException) as info:
        convert_config({"replica": "2"}, CREATE_KEYS, "create_deployment")
    message = str(info.value)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'replica'" in message and "did you mean 'replicas'" in message
    for known in ("instance_type", "replicas", "service_limit", "wait", "timeout", "max_batch_size"):
        assert known in message


@pytest.mark.parametrize(
    "config, problem",
    [
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
    ],
)
def test_bad_values_name_the_key_and_the_problem(config, problem):
    with pytest.raises(MlflowException) as info:
        convert_config(config, CREATE_KEYS, "create_deployment")
    assert problem in str(info.value) and repr(next(iter(config))) in str(info.value)


def test_update_only_keys():
    assert convert_config({"service_action": "stop"}, UPDATE_KEYS, "u") == {"service_action": "STOP"}
    with pytest.raises(MlflowException, match="service_action"):
        convert_config({"service_action": "START"}, CREATE_KEYS, "create_deployment")
    with pytest.raises(MlflowException, match="STOP, RESUME, SCALE"):
        convert_config({"service_action": "PAUSE"}, UPDATE_KEYS, "u")


def test_config_must_be_a_dict():
    with pytest.raises(MlflowException, match="must be a dict"):
        convert_config(["replicas=2"], CREATE_KEYS, "create_deployment")


def test_every_key_has_a_type_default_and_doc():
    for catalogue in (CREATE_KEYS, UPDATE_KEYS, ENDPOINT_UPDATE_KEYS, RUN_LOCAL_KEYS):
        for key in catalogue.values():
            assert key.doc and key.type_name
            assert key.default is None or isinstance(key.default, (key.type, int))
    text = describe_keys(CREATE_KEYS)
    assert "replicas" in text and "int, default 1" in text and "timeout" in text
