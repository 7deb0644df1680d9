"""Group auth through wedata's actions, judged by the data plane: a token from the call info is let
in, a deleted or reset one is refused, auth off lets everyone in."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.cloudapi import common_client, error_of
from tests.support.models import iris_frame

from .wedata_calls import WS, checked, delete_group, running_service


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


@pytest.fixture(scope="module")
def group_id(wedata, logistic_model_dir):
    group_id = running_service(wedata, "wt-iris", logistic_model_dir)["ServiceGroupId"]
    yield group_id
    delete_group(wedata, group_id)


def call_info(wedata, **ids) -> dict:
    return checked(wedata, "GetModelServiceCallInfo", {"WorkspaceId": WS, **ids})["ServiceCallInfo"]


def predict(url: str, token: str | None = None) -> int:
    X, _ = iris_frame()
    body = json.dumps({"dataframe_split": X.iloc[:1].to_dict(orient="split")})
    headers = {"content-type": "application/json", **({"authorization": token} if token else {})}
    return httpx.post(url, content=body, headers=headers, timeout=30).status_code


def group_tokens(wedata, group_id) -> dict[str, dict]:
    """The group's `AuthTokens`, by name."""
    group = checked(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    return {t["Base"]["Name"]: t for t in group["AuthTokens"]}


def switch_auth(wedata, group_id, on: bool) -> None:
    data = checked(
        wedata,
        "UpdateModelServiceAuthorization",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "AuthorizationEnable": on},
    )
    assert data["TiOneRequestId"]


def test_auth_on_gives_a_token_the_data_plane_takes(wedata, group_id):
    info = call_info(wedata, ServiceGroupId=group_id)
    assert info["AuthorizationEnable"] is False and info["AuthToken"] == ""
    assert predict(info["InternetEndpoint"]) == 200
    switch_auth(wedata, group_id, True)
    info = call_info(wedata, ServiceGroupId=group_id)
    assert info["AuthorizationEnable"] is True and info["AuthToken"]
    assert predict(info["InternetEndpoint"]) == 401
    assert predict(info["InternetEndpoint"], info["AuthToken"]) == 200


def test_call_info_takes_the_group_by_either_member(wedata, group_id):
    # The published example names the group by ServiceId; a service's own id stands for its group.
    by_group = call_info(wedata, ServiceGroupId=group_id)
    assert call_info(wedata, ServiceId=group_id) == by_group
    group = checked(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert call_info(wedata, ServiceId=group["Services"][0]["ServiceId"]) == by_group
    assert error_of(wedata, "GetModelServiceCallInfo", {"WorkspaceId": WS}).code == "MissingParameter"


def test_a_deleted_token_is_refused_and_a_created_one_let_in(wedata, group_id):
    switch_auth(wedata, group_id, True)
    first = call_info(wedata, ServiceGroupId=group_id)
    created = checked(
        wedata,
        "CreateModelServiceAuthToken",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "Name": "ci", "Description": "for CI"},
    )
    assert created["TiOneRequestId"]
    params = {"WorkspaceId": WS, "ServiceGroupId": group_id, "AuthTokenValue": first["AuthToken"]}
    checked(wedata, "DeleteModelServiceAuthToken", params)
    assert predict(first["InternetEndpoint"], first["AuthToken"]) == 401
    assert error_of(wedata, "DeleteModelServiceAuthToken", params).code == "ResourceNotFound"
    # The group shows the created token with its value, which the data plane takes.
    ci = group_tokens(wedata, group_id)["ci"]
    assert ci["Base"]["Description"] == "for CI" and ci["Limits"] == []
    assert predict(first["InternetEndpoint"], ci["Base"]["Value"]) == 200
    assert first["AuthToken"] not in {t["Base"]["Value"] for t in group_tokens(wedata, group_id).values()}
    # The created token is now the group's only one: the call info hands it out, and it works.
    second = call_info(wedata, ServiceGroupId=group_id)
    assert second["AuthToken"] not in ("", first["AuthToken"])
    assert predict(second["InternetEndpoint"], second["AuthToken"]) == 200


def test_a_reset_token_changes_value_and_the_old_one_is_refused(wedata, group_id):
    switch_auth(wedata, group_id, True)
    before = call_info(wedata, ServiceGroupId=group_id)
    token = {
        "Base": {"Value": before["AuthToken"], "Description": "rotated"},
        "Limits": [{"Strategy": "QPS", "Max": 5}],
    }
    data = checked(
        wedata,
        "UpdateModelServiceAuthToken",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "NeedReset": True, "AuthToken": token},
    )
    assert data["TiOneRequestId"]
    after = call_info(wedata, ServiceGroupId=group_id)
    assert after["AuthToken"] and after["AuthToken"] != before["AuthToken"]
    [shown] = [t for t in group_tokens(wedata, group_id).values() if t["Base"]["Value"] == after["AuthToken"]]
    assert shown["Base"]["Description"] == "rotated" and shown["Limits"] == [{"Strategy": "QPS", "Max": 5}]
    assert predict(after["InternetEndpoint"], before["AuthToken"]) == 401
    assert predict(after["InternetEndpoint"], after["AuthToken"]) == 200
    err = error_of(
        wedata,
        "UpdateModelServiceAuthToken",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "AuthToken": {"Base": {"Value": before["AuthToken"]}}},
    )
    assert err.code == "ResourceNotFound"
    err = error_of(
        wedata,
        "UpdateModelServiceAuthToken",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "AuthToken": {"Base": {"Description": "which?"}}},
    )
    assert err.code == "MissingParameter" and "AuthToken.Base.Value" in err.message
    # Without AuthToken, the update is of the token the call info hands out.
    checked(wedata, "UpdateModelServiceAuthToken", {"WorkspaceId": WS, "ServiceGroupId": group_id, "NeedReset": True})
    latest = call_info(wedata, ServiceGroupId=group_id)
    assert latest["AuthToken"] not in ("", after["AuthToken"])
    assert predict(latest["InternetEndpoint"], latest["AuthToken"]) == 200


def test_auth_off_lets_everyone_in_again(wedata, group_id):
    switch_auth(wedata, group_id, True)
    switch_auth(wedata, group_id, False)
    info = call_info(wedata, ServiceGroupId=group_id)
    assert info["AuthorizationEnable"] is False and info["AuthToken"] == ""
    assert predict(info["InternetEndpoint"]) == 200
