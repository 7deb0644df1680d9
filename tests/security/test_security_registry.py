"""The model registry partitioned by workspace: a model registered for workspace B (its
`tcdeploy.workspace` tag) cannot be listed, read, changed or deployed from A; a model registered
with plain MLflow (no tag) is the default workspace's."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.support.cloudapi import call, error_of
from tests.support.models import register_model

from .security_estate import Estate, service_spec

REGISTRY = {"CatalogName": "default", "SchemaName": "default"}


@pytest.fixture(scope="module")
def b_model(estate: Estate) -> str:
    """A model of B's: registered with MLflow, tagged for B's workspace."""
    name = "b-only-model"
    register_model(estate.server.tracking_uri, name, workspace=estate.b.workspace)
    return name


@pytest.fixture(scope="module")
def plain_model(estate: Estate) -> str:
    """A model registered with plain MLflow: no workspace tag."""
    name = "untagged-model"
    register_model(estate.server.tracking_uri, name)
    return name


def names_listed(client, workspace: str) -> set[str]:
    found = call(client, "SearchModels", {"WorkspaceId": workspace, "MaxResults": 100})["Data"]["Items"]
    return {item["Name"] for item in found}


def test_from_a_a_model_of_b_does_not_exist(estate, b_model):
    a = estate.client(estate.a.key)
    ws = {"WorkspaceId": estate.a.workspace, **REGISTRY, "ModelName": b_model}
    for action, body in (
        ("ListModelVersions", ws),
        ("GetModelVersion", {**ws, "ModelVersion": 1}),
        ("GetModel", ws),
        ("UpdateModelVersionAliases", {**ws, "ModelVersion": 1, "AddedAliases": ["stolen"]}),
    ):
        assert error_of(a, action, body).code == "ResourceNotFound", action
    assert b_model not in names_listed(a, estate.a.workspace)
    assert not MlflowClient(estate.server.tracking_uri).get_model_version(b_model, "1").aliases


@pytest.mark.parametrize(
    "model_info",
    [lambda m: {"ModelPath": f"models:/{m}/1"}, lambda m: {"Name": m, "Version": "1"}],
    ids=["by-uri", "by-name"],
)
def test_a_cannot_deploy_a_model_of_b_and_nothing_is_created(estate, b_model, model_info):
    a = estate.client(estate.a.key)
    spec = {**service_spec(estate.model_dir), "MlModelInfo": model_info(b_model)}
    body = {"WorkspaceId": estate.a.workspace, "ServiceName": "a-steals", "Services": [spec]}
    refused = error_of(a, "CreateMLModelServices", body)
    assert refused.code in ("ResourceNotFound", "InvalidParameterValue") and b_model in refused.message
    groups = call(a, "ListMLModelServiceGroups", {"WorkspaceId": estate.a.workspace, "PageSize": 100})["Data"]["Rows"]
    assert [g["ServiceGroupId"] for g in groups] == [estate.a.group_id]


def test_b_sees_and_deploys_its_own_model(estate, b_model):
    b = estate.client(estate.b.key)
    ws = {"WorkspaceId": estate.b.workspace, **REGISTRY, "ModelName": b_model}
    assert call(b, "GetModelVersion", {**ws, "ModelVersion": 1})["Data"]["ModelVersion"]["Version"] in (1, "1")
    assert b_model in names_listed(b, estate.b.workspace)
    spec = {**service_spec(estate.model_dir), "MlModelInfo": {"ModelPath": f"models:/{b_model}/1"}}
    created = call(
        b, "CreateMLModelServices", {"WorkspaceId": estate.b.workspace, "ServiceName": "b-own", "Services": [spec]}
    )
    group_id = created["Data"]["ServiceGroupId"]
    call(b, "DeleteMLModelServiceGroup", {"WorkspaceId": estate.b.workspace, "ServiceGroupId": group_id})


def test_an_untagged_model_is_the_default_workspace_s(estate, plain_model):
    admin = estate.client(estate.admin)
    assert plain_model in names_listed(admin, "default")
    assert plain_model not in names_listed(estate.client(estate.b.key), estate.b.workspace)
