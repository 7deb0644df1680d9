"""The vendored WeData schema: it is the reference's, its request models take the published
examples, and its reply check finds what differs (and nothing in the published replies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tcdeploy.protocol import schema
from tests.support.reference import WEDATA_EXAMPLES, WEDATA_REFERENCE

REFERENCE = WEDATA_REFERENCE
EXAMPLES = sorted(WEDATA_EXAMPLES.glob("*.json"))


def test_the_vendored_schema_is_the_reference():
    vendored = Path(schema.__file__).with_name("wedata-2025-10-10.json")
    assert json.loads(vendored.read_text()) == json.loads((REFERENCE / "actions.json").read_text())


def test_every_action_builds_a_request_model_and_model_service_ones_know_every_struct():
    wedata = schema.wedata()
    for action in wedata.actions:
        schema.request_model(action)
    model_service = wedata.actions_of("model-service")
    assert len(model_service) == 24
    for action in model_service:
        for member in wedata.actions[action].input:
            assert member.struct is None or member.struct in wedata.structs, f"{action}.{member.name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_published_examples_are_accepted_and_their_replies_match(example):
    call = json.loads(example.read_text())
    schema.request_model(call["action"]).model_validate(call["request"])
    assert schema.reply_mismatches(call["action"], call["response"]["Response"].get("Data")) == []


def test_requests_take_exactly_the_schemas_members_and_types():
    model = schema.request_model("UpdateServiceGroupWeights")
    with pytest.raises(ValidationError, match="ServiceGroupId"):
        model.model_validate({})  # required
    with pytest.raises(ValidationError, match="Colour"):
        model.model_validate({"ServiceGroupId": "g", "Colour": "blue"})
    with pytest.raises(ValidationError, match="Weight"):
        model.model_validate({"ServiceGroupId": "g", "WeightEntries": [{"ServiceId": "s", "Weight": "heavy"}]})
    ok = model.model_validate({"ServiceGroupId": "g", "WeightEntries": [{"ServiceId": "s", "Weight": 100}]})
    assert ok.WeightEntries[0].Weight == 100


def test_extensions_are_added_and_may_not_replace_a_member():
    model = schema.request_model(
        "CreateMLModelServices", extensions={"CreateServiceInfos": {"BatchConfig": (dict, None)}}
    )
    parsed = model.model_validate({"Services": [{"BatchConfig": {"MaxBatchSize": 8}}]})
    assert parsed.Services[0].BatchConfig == {"MaxBatchSize": 8}
    with pytest.raises(KeyError, match="may not replace"):
        schema.request_model("CreateMLModelServices", extensions={"CreateServiceInfos": {"Replicas": (str, None)}})


def test_reply_check_names_unknown_members_and_wrong_types():
    data = {"ServiceId": "a-1", "Replicas": "two", "Colour": "blue", "PodInfos": [{"Name": 3}]}
    problems = schema.reply_mismatches("GetMLModelService", data)
    assert "Data.Replicas: int expected, got str 'two'" in problems
    assert "Data.Colour: not a member of MLModelService" in problems
    assert any(p.startswith("Data.PodInfos.0.Name: string expected") for p in problems)
    assert (
        schema.reply_mismatches(
            "GetMLModelService", data | {"Replicas": 2, "PodInfos": []}, extensions={"MLModelService": {"Colour"}}
        )
        == []
    )
