"""Key casing: PascalCase on the wire, snake_case for MLflow users."""

from __future__ import annotations

import pytest

from tcdeploy.plugin import casing


@pytest.mark.parametrize(
    "pascal, snake",
    [
        ("ServiceGroupId", "service_group_id"),
        ("MlModelInfo", "ml_model_info"),
        ("Url", "url"),
        ("ReadyReplicas", "ready_replicas"),
        ("TiOneRebuildServiceRequestId", "ti_one_rebuild_service_request_id"),
        ("EnableInstanceRpsLimit", "enable_instance_rps_limit"),
        ("Cpu", "cpu"),
    ],
)
def test_casing_round_trip(pascal, snake):
    assert casing.snake(pascal) == snake and casing.pascal(snake) == pascal
    assert casing.pascal(pascal) == pascal


def test_snake_keys_recurses_into_lists():
    assert casing.snake_keys({"Pods": [{"PodName": "p", "Ready": True}], "A": {"BCd": 1}}) == {
        "pods": [{"pod_name": "p", "ready": True}],
        "a": {"b_cd": 1},
    }
