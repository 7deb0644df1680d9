"""The transport seam: wire shape, retries, and cloud error codes -> MLflow error codes.

Throttling and proxy failures cannot be produced on demand by a real tcdeploy server, so these
tests talk to a tiny real HTTP server that answers like the cloud does.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.settings import Settings
from tcdeploy.plugin.cloudapi import CloudApi, CloudApiError, mlflow_error_code

ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDstub", "TENCENTCLOUD_SECRET_KEY": "stub-secret"}


class StubCloud:
    """Answers each POST with the next scripted (status, content type, body); records requests."""

    def __init__(self):
        self.script: list[tuple[int, str, bytes]] = []
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                status, content_type, reply = stub.script.pop(0) if stub.script else ok({})
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"tcdeploy://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ok(payload: dict, content_type: str = "application/json") -> tuple[int, str, bytes]:
    return 200, content_type, json.dumps({"Response": {**payload, "RequestId": "req-ok"}}).encode()


def error(code: str, message: str, content_type: str = "application/json") -> tuple[int, str, bytes]:
    document = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req-err"}}
    return 200, content_type, json.dumps(document).encode()


@pytest.fixture
def stub():
    cloud = StubCloud()
    try:
        yield cloud
    finally:
        cloud.close()


def api_for(stub: StubCloud, **env) -> tuple[CloudApi, list[float]]:
    sleeps: list[float] = []
    settings = Settings.from_target(stub.target, {**ENV, **env})
    return CloudApi(settings, sleep=sleeps.append), sleeps


def test_requests_are_signed_scoped_and_unwrapped(stub):
    api, _ = api_for(stub, WEDATA_WORKSPACE_ID="ws-7")
    stub.script = [ok({"Data": {"ServiceId": "svc-1"}}), ok({"SpecInfos": []})]
    assert api.wedata("GetMLModelService", {"ServiceId": "svc-1"}) == {"ServiceId": "svc-1"}
    assert api.tione("DescribeModelServiceGroup", {"ServiceGroupId": "grp-1"}) == {"SpecInfos": []}
    wedata, tione = stub.requests
    assert wedata["body"] == {"WorkspaceId": "ws-7", "ServiceId": "svc-1"}
    assert wedata["headers"]["X-TC-Action"] == "GetMLModelService"
    assert wedata["headers"]["X-TC-Version"] == "2025-10-10"
    assert "Credential=AKIDstub/" in wedata["headers"]["Authorization"]
    assert "/wedata/tc3_request" in wedata["headers"]["Authorization"]
    assert tione["body"] == {"TiProjectId": "ws-7", "ServiceGroupId": "grp-1"}
    assert tione["headers"]["X-TC-Version"] == "2021-11-11"
    assert "/tione/tc3_request" in tione["headers"]["Authorization"]
    assert "stub-secret" not in json.dumps(stub.requests)


def test_throttling_is_retried_with_backoff(stub):
    api, sleeps = api_for(stub)
    stub.script = [error("RequestLimitExceeded", "slow down"), error("RequestLimitExceeded.UinLimitExceeded", "x"),
                   ok({"Data": {"ok": True}})]
    assert api.wedata("CreateMLModelServices", {}) == {"ok": True}  # safe: throttled calls did nothing
    assert len(stub.requests) == 3 and sleeps == [0.5, 1.0]


def test_network_errors_are_retried_for_repeatable_actions_only(stub):
    api, sleeps = api_for(stub)
    stub.script = [(502, "text/html", b"<h1>bad gateway</h1>"), ok({"Data": {"ok": True}})]
    assert api.wedata("GetMLModelService", {}) == {"ok": True}
    stub.requests.clear()
    stub.script = [(502, "text/html", b"<h1>bad gateway</h1>"), ok({"Data": {}})]
    with pytest.raises(CloudApiError) as info:
        api.wedata("CreateMLModelServices", {})
    assert len(stub.requests) == 1  # a lost reply may hide a success: never create twice
    assert info.value.error_code == "INTERNAL_ERROR" and "bad gateway" in str(info.value)


def test_attempts_are_bounded(stub):
    api, sleeps = api_for(stub, TCDEPLOY_MAX_ATTEMPTS="2")
    stub.script = [error("RequestLimitExceeded", "no")] * 3
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert len(stub.requests) == 2 and info.value.error_code == "REQUEST_LIMIT_EXCEEDED"


def test_errors_carry_code_message_and_request_id(stub):
    api, _ = api_for(stub)
    stub.script = [error("ResourceNotFound", "service 'svc-x' does not exist")]
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {"ServiceId": "svc-x"})
    exc = info.value
    assert isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert (exc.cloud_code, exc.request_id, exc.action) == ("ResourceNotFound", "req-err", "GetMLModelService")
    assert "service 'svc-x' does not exist" in str(exc) and "RequestId: req-err" in str(exc)
    assert exc.is_not_found() and isinstance(exc.__cause__, Exception)


def test_error_replies_with_a_charset_are_still_errors(stub):
    # The SDK only checks for errors when Content-Type is exactly application/json.
    api, _ = api_for(stub)
    stub.script = [error("FailedOperation", "busy", content_type="application/json; charset=utf-8")]
    with pytest.raises(CloudApiError) as info:
        api.wedata("DeleteMLModelService", {})
    assert info.value.error_code == "INVALID_STATE"


def test_a_reply_without_response_is_an_error(stub):
    api, _ = api_for(stub, TCDEPLOY_MAX_ATTEMPTS="1")
    stub.script = [(200, "application/json", b'{"Data": {}}'), (200, "text/html", b"<html>portal</html>")]
    with pytest.raises(CloudApiError, match="not a cloud API reply"):
        api.wedata("GetMLModelService", {})
    with pytest.raises(CloudApiError, match="not a cloud API reply"):
        api.wedata("GetMLModelService", {})


@pytest.mark.parametrize("cloud, mlflow", [
    ("ResourceNotFound", "RESOURCE_DOES_NOT_EXIST"),
    ("ResourceNotFound.ServiceNotFound", "RESOURCE_DOES_NOT_EXIST"),
    ("InvalidParameter", "INVALID_PARAMETER_VALUE"),
    ("InvalidParameterValue", "INVALID_PARAMETER_VALUE"),
    ("InvalidParameterValue.BadName", "INVALID_PARAMETER_VALUE"),
    ("MissingParameter", "INVALID_PARAMETER_VALUE"),
    ("UnknownParameter", "INVALID_PARAMETER_VALUE"),
    ("AuthFailure.SignatureFailure", "UNAUTHENTICATED"),
    ("AuthFailure.SecretIdNotFound", "UNAUTHENTICATED"),
    ("AuthFailure.SignatureExpire", "UNAUTHENTICATED"),
    ("AuthFailure.UnauthorizedOperation", "PERMISSION_DENIED"),
    ("UnauthorizedOperation", "PERMISSION_DENIED"),
    ("ResourceInUse", "RESOURCE_ALREADY_EXISTS"),
    ("LimitExceeded", "RESOURCE_LIMIT_EXCEEDED"),
    ("RequestLimitExceeded", "REQUEST_LIMIT_EXCEEDED"),
    ("FailedOperation", "INVALID_STATE"),
    ("InternalError", "INTERNAL_ERROR"),
    ("ClientNetworkError", "TEMPORARILY_UNAVAILABLE"),
    ("InvalidAction", "NOT_IMPLEMENTED"),
    ("SomethingNew", "INTERNAL_ERROR"),
])
def test_cloud_codes_map_to_mlflow_codes(cloud, mlflow):
    from mlflow.protos.databricks_pb2 import ErrorCode

    assert ErrorCode.Name(mlflow_error_code(cloud)) == mlflow
