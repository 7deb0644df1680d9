"""Refusals: each bad request gets its own Tencent error code and a message naming the problem."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.cloudapi import call, common_client, create_service, error_of, raw_post

WS = "default"


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


def service_body(model_dir, name="errs", **service):
    return {
        "WorkspaceId": WS,
        "ServiceName": name,
        "Services": [
            {"InstanceType": "TI.S.SMALL.POST", "Replicas": 0, "MlModelInfo": {"ModelPath": str(model_dir)}, **service}
        ],
    }


def test_wrong_secret_key_and_unknown_id(tcdeploy_server):
    wrong_key = common_client(tcdeploy_server, secret_key="not-the-key")
    assert error_of(wrong_key, "GetMLModelService", {"ServiceId": "svc-x"}).code == "AuthFailure.SignatureFailure"
    unknown = common_client(tcdeploy_server, secret_id="AKIDnobody")
    assert error_of(unknown, "GetMLModelService", {"ServiceId": "svc-x"}).code == "AuthFailure.SecretIdNotFound"


def test_expired_timestamp(tcdeploy_server):
    reply = raw_post(tcdeploy_server, "GetMLModelService", b'{"ServiceId": "svc-x"}', timestamp=int(time.time()) - 600)
    assert reply["Error"]["Code"] == "AuthFailure.SignatureExpire"


def test_unsigned_request(tcdeploy_server):
    reply = httpx.post(tcdeploy_server.url + "/", json={}, headers={"X-TC-Action": "GetMLModelService"}).json()
    assert reply["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"
    assert reply["Response"]["RequestId"]


def test_unknown_action_and_version(tcdeploy_server, wedata):
    assert error_of(wedata, "LaunchRockets", {}).code == "InvalidAction"
    from tencentcloud.common import credential
    from tencentcloud.common.common_client import CommonClient

    from tests.support.cloudapi import _profile

    old = CommonClient(
        "wedata",
        "2020-01-01",
        credential.Credential(tcdeploy_server.secret_id, tcdeploy_server.secret_key),
        "ap-guangzhou",
        _profile(tcdeploy_server.port),
    )
    assert error_of(old, "GetMLModelService", {"ServiceId": "x"}).code == "NoSuchVersion"


def test_body_not_json_and_not_an_object(tcdeploy_server):
    reply = raw_post(tcdeploy_server, "GetMLModelService", b"{not json")
    assert reply["Error"]["Code"] == "InvalidParameter" and "JSON" in reply["Error"]["Message"]
    reply = raw_post(tcdeploy_server, "GetMLModelService", b"[1, 2]")
    assert reply["Error"]["Code"] == "InvalidParameter"


def test_body_over_ten_mib(tcdeploy_server):
    body = json.dumps({"ServiceId": "x" * (11 * 2**20)}).encode()
    reply = raw_post(tcdeploy_server, "GetMLModelService", body)
    assert reply["Error"]["Code"] == "RequestSizeLimitExceeded"


def test_missing_unknown_and_ill_typed_parameters_are_named(wedata, logistic_model_dir):
    body = service_body(logistic_model_dir)
    del body["Services"][0]["InstanceType"]
    err = error_of(wedata, "CreateMLModelServices", body)
    assert err.code == "MissingParameter" and "Services.0.InstanceType" in err.message

    err = error_of(wedata, "CreateMLModelServices", {**service_body(logistic_model_dir), "Colour": "blue"})
    assert err.code == "UnknownParameter" and "Colour" in err.message

    err = error_of(wedata, "CreateMLModelServices", service_body(logistic_model_dir, Replicas="many"))
    assert err.code == "InvalidParameter" and "Services.0.Replicas" in err.message

    err = error_of(wedata, "CreateMLModelServices", service_body(logistic_model_dir, Replicas=99))
    assert err.code == "InvalidParameterValue" and "Replicas" in err.message

    err = error_of(wedata, "CreateMLModelServices", service_body(logistic_model_dir, InstanceType="TI.HUGE"))
    assert err.code == "InvalidParameterValue" and "TI.HUGE" in err.message


@pytest.mark.parametrize("path", ["http://169.254.169.254/latest", "relative/dir", "ftp://x/y", "/no/such/dir"])
def test_model_paths_that_are_not_local_models_or_registry_uris_are_refused(wedata, path):
    body = {
        "WorkspaceId": WS,
        "ServiceName": "ssrf",
        "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": path}}],
    }
    err = error_of(wedata, "CreateMLModelServices", body)
    assert err.code == "InvalidParameterValue" and "ModelPath" in err.message


def test_unknown_resources(wedata):
    assert (
        error_of(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": "svc-nope"}).code == "ResourceNotFound"
    )
    err = error_of(
        wedata,
        "CreateMLModelServices",
        {
            "WorkspaceId": WS,
            "ServiceName": "orphan",
            "ServiceGroupId": "grp-nope",
            "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"Name": "m", "Version": "1"}}],
        },
    )
    assert err.code == "ResourceNotFound"


def test_names_are_unique_and_a_group_holds_at_most_two_services(wedata, logistic_model_dir):
    first = create_service(wedata, service_body(logistic_model_dir, name="dup"))
    try:
        assert (
            error_of(wedata, "CreateMLModelServices", service_body(logistic_model_dir, name="dup")).code
            == "ResourceInUse"
        )
        group = first["ServiceGroupId"]
        second = create_service(
            wedata,
            {**service_body(logistic_model_dir, name="dup-v2"), "ServiceGroupId": group},
        )
        assert second["ServiceGroupId"] == group and second["Version"] == 2 and second["Weight"] == 0
        third = {**service_body(logistic_model_dir, name="dup-v3"), "ServiceGroupId": group}
        err = error_of(wedata, "CreateMLModelServices", third)
        assert err.code == "LimitExceeded"
        # A refused request changed nothing.
        assert (
            error_of(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": "dup-v3"}).code == "ResourceNotFound"
        )
    finally:
        for sid in ("dup-v2", "dup"):
            call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": sid})
