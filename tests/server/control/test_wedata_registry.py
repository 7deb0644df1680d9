"""The registry actions against the server's MLflow registry: versions listed in pages with opaque
tokens, one version, aliases that MLflow itself then sees, models listed, got and searched."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.support.cloudapi import common_client, error_of
from tests.support.models import register_model

from .wedata_calls import WS, checked

NAMES = {"CatalogName": "wr_cat", "SchemaName": "wr_sch", "ModelName": "iris"}


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


@pytest.fixture(scope="module")
def registered(tcdeploy_server):
    """Two versions of wr_cat.wr_sch.iris and one of wr_cat.wr_sch.forest."""
    uri = tcdeploy_server.tracking_uri
    versions = [register_model(uri, "wr_cat.wr_sch.iris"), register_model(uri, "wr_cat.wr_sch.iris")]
    register_model(uri, "wr_cat.wr_sch.forest", kind="forest")
    return versions


def all_pages(wedata, action: str, params: dict, size) -> list[dict]:
    items, token, seen = [], None, 0
    while True:
        data = checked(wedata, action, {**params, "MaxResults": size, **({"PageToken": token} if token else {})})
        assert isinstance(data["TotalCount"], str)
        items += data["Items"]
        token = data["NextPageToken"]
        seen += 1
        if not token:
            return items
        assert not token.isdigit() and seen < 50  # opaque, and the pages end


def test_versions_come_in_pages_that_continue_with_the_token(wedata, registered):
    items = all_pages(wedata, "ListModelVersions", {"WorkspaceId": WS, **NAMES}, "1")
    assert [i["Version"] for i in items] == registered
    item = items[0]
    assert (item["CatalogName"], item["SchemaName"], item["ModelName"]) == ("wr_cat", "wr_sch", "iris")
    assert item["Uri"] == f"models:/wr_cat.wr_sch.iris/{registered[0]}"
    assert item["Audit"]["CreatedAt"].isdigit() and isinstance(item["Aliases"], list)
    props = {p["Key"]: p["Value"] for p in item["Properties"]}
    assert props["tclake.mlflow.artifact_path"] == item["Uri"]
    whole = checked(wedata, "ListModelVersions", {"WorkspaceId": WS, **NAMES, "MaxResults": "100"})
    assert whole["TotalCount"] == "2" and whole["NextPageToken"] == ""


def test_a_token_not_from_a_reply_is_refused(wedata, registered):
    err = error_of(wedata, "ListModelVersions", {"WorkspaceId": WS, **NAMES, "PageToken": "bm9wZQ"})
    assert err.code == "InvalidParameterValue" and "PageToken" in err.message


def test_one_version_and_a_missing_one(wedata, registered):
    data = checked(wedata, "GetModelVersion", {"WorkspaceId": WS, **NAMES, "ModelVersion": int(registered[1])})
    assert data["ModelVersion"]["Version"] == registered[1]
    err = error_of(wedata, "GetModelVersion", {"WorkspaceId": WS, **NAMES, "ModelVersion": 999})
    assert err.code == "ResourceNotFound"


def test_an_alias_set_on_the_wire_is_seen_by_mlflow(wedata, tcdeploy_server, registered):
    client = MlflowClient(tracking_uri=tcdeploy_server.tracking_uri, registry_uri=tcdeploy_server.tracking_uri)
    first, second = registered
    params = {"WorkspaceId": WS, **NAMES}
    data = checked(
        wedata, "UpdateModelVersionAliases", {**params, "ModelVersion": int(first), "AddedAliases": ["champion"]}
    )
    assert data["ModelVersion"]["Aliases"] == ["champion"]
    assert str(client.get_model_version_by_alias("wr_cat.wr_sch.iris", "champion").version) == first
    # Set on the other version, the alias moves there, as MLflow's aliases do.
    checked(wedata, "UpdateModelVersionAliases", {**params, "ModelVersion": int(second), "AddedAliases": ["champion"]})
    assert str(client.get_model_version_by_alias("wr_cat.wr_sch.iris", "champion").version) == second
    err = error_of(
        wedata, "UpdateModelVersionAliases", {**params, "ModelVersion": int(first), "RemovedAliases": ["champion"]}
    )
    assert err.code == "InvalidParameterValue" and "RemovedAliases.0" in err.message
    data = checked(
        wedata, "UpdateModelVersionAliases", {**params, "ModelVersion": int(second), "RemovedAliases": ["champion"]}
    )
    assert data["ModelVersion"]["Aliases"] == []
    assert "champion" not in client.get_registered_model("wr_cat.wr_sch.iris").aliases


def test_models_are_listed_got_and_searched(wedata, registered):
    params = {"WorkspaceId": WS, "CatalogName": "wr_cat", "SchemaName": "wr_sch"}
    models = all_pages(wedata, "ListModels", params, 1)
    assert [m["Name"] for m in models] == ["forest", "iris"]
    iris = checked(wedata, "GetModel", {**params, "ModelName": "iris"})["Model"]
    assert (iris["Name"], iris["CatalogName"], iris["SchemaName"]) == ("iris", "wr_cat", "wr_sch")
    assert iris["LatestVersion"] == registered[-1] and iris["Id"] == "wr_cat.wr_sch.iris"
    found = checked(wedata, "SearchModels", {"WorkspaceId": WS, "MaxResults": 10, "Filter": "wr_sch.for"})["Items"]
    assert [m["Name"] for m in found] == ["forest"]
    assert error_of(wedata, "GetModel", {**params, "ModelName": "nothing"}).code == "ResourceNotFound"
    err = error_of(wedata, "SearchModels", {"WorkspaceId": WS, "MaxResults": 10, "SchemaName": "wr_sch"})
    assert err.code == "InvalidParameterValue" and "CatalogName" in err.message
