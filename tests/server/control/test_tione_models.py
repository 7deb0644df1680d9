"""The tione request models are the SDK's: every member it declares, with the CLI's required flags,
and nothing else; each refusal names the member."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tccli

from tcdeploy.protocol.actions import parse_request
from tcdeploy.protocol.errors import ApiError
from tcdeploy.protocol.tione import ACTIONS, EXTENSIONS, MODELS, NO_EFFECT, REQUIRED, members, sdk_actions

CLI_API = Path(tccli.__file__).parent / "services" / "tione" / "v20211111" / "api.json"


@pytest.fixture(scope="module")
def cli_api() -> dict:
    return json.loads(CLI_API.read_text(encoding="utf-8"))


def cli_members(api: dict, action: str) -> dict[str, bool]:
    """The request members of `action` in the official CLI's API definition, with their required flag."""
    request = api["actions"][action]["input"]
    return {m["name"]: bool(m.get("required")) for m in api["objects"][request]["members"]}


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_takes_the_members_of_the_sdk_and_the_cli(cli_api, action):
    sdk = {m.name for m in members(f"{action}Request")}
    assert set(MODELS[action].model_fields) == sdk
    cli = cli_members(cli_api, action)
    assert set(cli) == sdk
    assert {name for name, required in cli.items() if required} == REQUIRED.get(action, frozenset())
    assert {name for name, field in MODELS[action].model_fields.items() if field.is_required()} == REQUIRED.get(
        action, frozenset()
    )


def test_our_extensions_are_not_sdk_actions():
    assert ACTIONS and set(ACTIONS) <= sdk_actions()
    assert not set(EXTENSIONS) & sdk_actions()


def refusal(action: str, body: dict) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(MODELS[action], body)
    return caught.value


def test_refusals_name_the_member():
    err = refusal("CreateModelService", {"ModelInfo": {"ModelNme": "x"}})
    assert err.code == "UnknownParameter" and "ModelInfo.ModelNme" in err.message
    err = refusal("ModifyServiceGroupWeights", {"ServiceGroupId": "g", "Weights": [{"ServiceId": "s", "Weight": 101}]})
    assert err.code == "InvalidParameterValue" and "Weights.0.Weight" in err.message
    assert refusal("DescribeLogs", {}).code == "MissingParameter"
    err = refusal("DescribeEvents", {"Service": "INFER", "StartTime": "yesterday"})
    assert err.code == "InvalidParameterValue" and "StartTime" in err.message
    err = refusal("CreateModelService", {"HealthProbe": {"LivenessProbe": {"PeriodSeconds": "often"}}})
    assert err.code == "InvalidParameter" and "HealthProbe.LivenessProbe.PeriodSeconds" in err.message


def test_every_struct_member_the_sdk_declares_is_accepted():
    body = {
        "ServiceGroupName": "all-of-it",
        "HorizontalPodAutoscaler": {"MinReplicas": 1, "MaxReplicas": 2, "HpaMetrics": [{"Name": "cpu", "Value": 60}]},
        "CronScaleJobs": [{"Schedule": "0 0 * * *", "Name": "n", "TargetReplicas": 1, "ExcludeDates": ["2026-01-01"]}],
        "RollingUpdate": {"MaxUnavailable": {"Type": "PERCENT", "Value": 25}},
        "VolumeMounts": [{"CFSConfig": {"Id": "cfs", "Path": "/"}, "VolumeSourceType": "CFS", "MountPath": "/m"}],
        "GatewayConfig": {"GatewayType": "x"},
        "Sidecar": {"ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "u"}},
    }
    parsed = parse_request(MODELS["CreateModelService"], body)
    assert parsed.model_dump(exclude_none=True) == body


# What the service handlers act on; every other member is named in NO_EFFECT.
SCALING = ("ScaleMode", "ScaleStrategy", "HorizontalPodAutoscaler", "CronScaleJobs", "ScheduledAction")
ACTING = {
    "CreateModelService": {
        "TiProjectId", "ServiceGroupId", "ServiceGroupName", "ServiceDescription", "ModelInfo", "InstanceType",
        "Replicas", "LogEnable", "AuthorizationEnable", "NewVersion", "ServiceLimit", "Resources", "Env",
        "HealthProbe", *SCALING,
    },
    "ModifyModelService": {
        "ServiceId", "TiProjectId", "ServiceDescription", "ModelInfo", "InstanceType", "Replicas", "LogEnable",
        "ServiceAction", "ServiceLimit", "Resources", "Env", "HealthProbe", *SCALING,
    },
}  # fmt: skip
WIRE_MD = Path(__file__).resolve().parents[3] / "docs" / "wire.md"


@pytest.mark.parametrize("action", sorted(ACTING))
def test_every_service_member_acts_or_is_named_as_accepted_with_no_effect(action):
    named = {path.split(".")[0] for path in NO_EFFECT[action]}
    top = {m.name for m in members(f"{action}Request")}
    assert top - ACTING[action] - named == set()
    assert not set(NO_EFFECT[action]) & ACTING[action]  # a member named whole does not also act


def test_docs_list_exactly_the_members_accepted_with_no_effect():
    tione_part = WIRE_MD.read_text(encoding="utf-8").split("## tione 2021-11-11", 1)[1]
    listed = set(re.findall(r"^\| `(\w+)` \| `([\w.]+)` \| (.+?) \|$", tione_part, flags=re.M))
    expected = {(action, member, why) for action, named in NO_EFFECT.items() for member, why in named.items()}
    assert listed == expected
