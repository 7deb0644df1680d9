"""CloudApi over its seam: scoping, retries, back-off, error translation, cloud -> MLflow codes.

The seam is a function ``send(service, version, action, body) -> reply document`` that raises
``NoReply`` when nothing answered; the tests hand one in. One test goes through the default seam
(the SDK signs and posts) to a tiny listener on 127.0.0.1, for what only the SDK path does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.cloudapi import WEDATA, CloudApi, CloudApiError, NoReply, mlflow_error_code
from tcdeploy.plugin.settings import Settings

ENV = {"TENCENTCLOUD_SECRET_ID": "AKIDstub", "TENCENTCLOUD_SECRET_KEY": "stub-secret"}
LOCAL = "tcdeploy://127.0.0.1:8600"
CREATES = ["CreateMLModelServices", "CreateModelServiceGroup", "CreateModelServiceAuthToken"]


def ok(**response) -> dict:
    return {"Response": {**response, "RequestId": "req-ok"}}


def error(code: str, message: str) -> dict:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req-err"}}


class Script:
    """A seam that answers each call with the next reply (a document, or an exception to raise)
    and records the calls; one call more than scripted fails the test."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, str, str, dict]] = []

    def __call__(self, service: str, version: str, action: str, body: dict) -> dict:
        self.calls.append((service, version, action, body))
        if not self.replies:
            raise AssertionError(f"{action} sent once more than scripted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def api_with(send, target: str = LOCAL, **env) -> tuple[CloudApi, list[float]]:
    sleeps: list[float] = []
    settings = Settings.from_target(target, {**ENV, **env})
    return CloudApi(settings, send=send, sleep=sleeps.append), sleeps


def test_calls_are_scoped_versioned_and_unwrapped():
    seen = []

    def send(service, version, action, body):
        seen.append((service, version, action, body))
        return {"GetMLModelService": ok(Data={"ServiceId": "svc-1"}), "DeleteMLModelService": ok()}.get(
            action, ok(SpecInfos=[])
        )

    api, _ = api_with(send, WEDATA_WORKSPACE_ID="ws-7")
    assert api.wedata("GetMLModelService", {"ServiceId": "svc-1"}) == {"ServiceId": "svc-1"}
    assert api.wedata("DeleteMLModelService", {"ServiceId": "svc-1"}) == {}  # no Data
    assert api.tione("DescribeModelServiceGroup", {"ServiceGroupId": "grp-1"}) == {"SpecInfos": []}
    assert api.tione("DescribeBillingSpecs", scoped=False) == {"SpecInfos": []}
    assert seen == [
        ("wedata", "2025-10-10", "GetMLModelService", {"WorkspaceId": "ws-7", "ServiceId": "svc-1"}),
        ("wedata", "2025-10-10", "DeleteMLModelService", {"WorkspaceId": "ws-7", "ServiceId": "svc-1"}),
        ("tione", "2021-11-11", "DescribeModelServiceGroup", {"TiProjectId": "ws-7", "ServiceGroupId": "grp-1"}),
        ("tione", "2021-11-11", "DescribeBillingSpecs", {}),
    ]


def test_throttling_is_retried_with_backoff_even_for_creates():
    cloud = Script(
        error("RequestLimitExceeded", "slow down"),
        error("RequestLimitExceeded.UinLimitExceeded", "slower"),
        ok(Data={"ok": True}),
    )
    api, sleeps = api_with(cloud)
    assert api.wedata("CreateMLModelServices", {}) == {"ok": True}  # safe: a throttled call did nothing
    assert len(cloud.calls) == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    "code",
    [
        "FailedOperation",
        "ResourceNotFound",
        "InternalError",
        "LimitExceeded",
        "AuthFailure.SignatureFailure",
        "RequestLimitExceededButNotReally",
    ],
)
def test_other_error_replies_are_not_retried(code):
    cloud = Script(error(code, "no"))
    api, sleeps = api_with(cloud)
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert info.value.cloud_code == code and len(cloud.calls) == 1 and sleeps == []


def test_network_errors_are_retried_for_repeatable_actions():
    cloud = Script(
        NoReply("ServerNetworkError", "<h1>bad gateway</h1>"),
        NoReply("ClientNetworkError", "Read timed out."),
        ok(Data={"ok": True}),
    )
    api, sleeps = api_with(cloud)
    assert api.wedata("GetMLModelService", {}) == {"ok": True}
    assert len(cloud.calls) == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize("action", CREATES)
def test_a_create_is_never_resent_after_a_lost_reply(action):
    cloud = Script(NoReply("ServerNetworkError", "<h1>bad gateway</h1>"), ok())
    api, sleeps = api_with(cloud)
    with pytest.raises(CloudApiError) as info:
        api.call(WEDATA, action, {})
    assert len(cloud.calls) == 1 and sleeps == []  # a lost reply may hide a success: never create twice
    assert info.value.error_code == "INTERNAL_ERROR" and "bad gateway" in str(info.value)
    assert isinstance(info.value.__cause__, NoReply)


def test_a_lost_connection_says_where_and_why():
    refused = (
        "HTTPConnectionPool(host='127.0.0.1', port=8600): Max retries exceeded with url: / "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to "
        "establish a new connection: [Errno 111] Connection refused'))"
    )
    api, _ = api_with(Script(NoReply("ClientNetworkError", refused)), TCDEPLOY_MAX_ATTEMPTS="1")
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert info.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert info.value.cloud_message == (
        "cannot get an answer from http://127.0.0.1:8600: [Errno 111] "
        "Connection refused. Is `tcdeploy server` running at http://127.0.0.1:8600?"
    )
    # The cloud: the host of the API service called, and no hint about a local server.
    api, _ = api_with(
        Script(NoReply("ClientNetworkError", refused)),
        "tcdeploy:/ap-shanghai",
        TCDEPLOY_MAX_ATTEMPTS="1",
        WEDATA_WORKSPACE_ID="ws-1",
    )
    with pytest.raises(CloudApiError) as info:
        api.tione("DescribeModelServiceGroup", {})
    assert info.value.cloud_message == (
        "cannot get an answer from https://tione.tencentcloudapi.com: [Errno 111] Connection refused."
    )


def test_a_refused_connection_is_not_asked_again():
    # Nothing listens there, so nothing was sent: the hint comes at once, not after the back-off.
    cloud = Script(*[NoReply("ClientNetworkError", "[Errno 111] Connection refused")] * 3)
    api, sleeps = api_with(cloud, TCDEPLOY_MAX_ATTEMPTS="3")
    with pytest.raises(CloudApiError, match="Is `tcdeploy server` running at"):
        api.wedata("ListMLModelServiceGroups", {})
    assert len(cloud.calls) == 1 and sleeps == []


def test_attempts_are_bounded_and_backoff_is_capped():
    cloud = Script(*[error("RequestLimitExceeded", "no")] * 10)
    api, sleeps = api_with(cloud, TCDEPLOY_MAX_ATTEMPTS="6")
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert len(cloud.calls) == 6 and sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert info.value.error_code == "REQUEST_LIMIT_EXCEEDED"

    cloud = Script(*[NoReply("ClientNetworkError", "Read timed out.")] * 10)
    api, sleeps = api_with(cloud, TCDEPLOY_MAX_ATTEMPTS="2")
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert len(cloud.calls) == 2 and sleeps == [0.5]
    assert info.value.error_code == "TEMPORARILY_UNAVAILABLE"


def test_errors_carry_code_message_and_request_id():
    api, _ = api_with(Script(error("ResourceNotFound", "service 'svc-x' does not exist")))
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {"ServiceId": "svc-x"})
    exc = info.value
    assert isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert (exc.cloud_code, exc.request_id, exc.action) == ("ResourceNotFound", "req-err", "GetMLModelService")
    assert exc.cloud_message == "service 'svc-x' does not exist"
    assert str(exc) == ("GetMLModelService: ResourceNotFound: service 'svc-x' does not exist (RequestId: req-err)")
    assert exc.is_not_found()


def test_messages_are_text_of_bounded_length():
    api, _ = api_with(
        Script(error("InternalError", "x" * 5000), NoReply("ServerNetworkError", b"<h1>caf\xc3\xa9 \xff</h1>")),
        TCDEPLOY_MAX_ATTEMPTS="1",
    )
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert info.value.cloud_message == "x" * 2000
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert "<h1>café \ufffd</h1>" in info.value.cloud_message


@pytest.mark.parametrize("document", [{"Data": {}}, {"Response": "busy"}, [], "<html>portal</html>", None])
def test_a_document_that_is_not_a_cloud_api_reply_is_no_reply(document):
    cloud = Script(document, ok(Data={"ok": True}))
    api, _ = api_with(cloud)
    assert api.wedata("GetMLModelService", {}) == {"ok": True}  # retried, as for a lost reply
    cloud = Script(document)
    api, _ = api_with(cloud, TCDEPLOY_MAX_ATTEMPTS="1")
    with pytest.raises(CloudApiError, match="not a cloud API reply") as info:
        api.wedata("GetMLModelService", {})
    assert info.value.error_code == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    "cloud, mlflow",
    [
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
    ],
)
def test_cloud_codes_map_to_mlflow_codes(cloud, mlflow):
    from mlflow.protos.databricks_pb2 import ErrorCode

    assert ErrorCode.Name(mlflow_error_code(cloud)) == mlflow


# ---- the default seam: the SDK signs and posts ----------------------------------------------------


class Listener:
    """Answers each POST on 127.0.0.1 with the next scripted (status, content type, body) and
    records the requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str, bytes]] = []
        self.requests: list[dict] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                listener.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                status, content_type, reply = listener.script.pop(0)
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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def as_json(document: dict, content_type: str = "application/json") -> tuple[int, str, bytes]:
    return 200, content_type, json.dumps(document).encode()


def test_the_default_seam_signs_with_the_sdk_and_reads_every_kind_of_reply(listener):
    settings = Settings.from_target(
        listener.target, {**ENV, "WEDATA_WORKSPACE_ID": "ws-7", "TCDEPLOY_MAX_ATTEMPTS": "1"}
    )
    api = CloudApi(settings)  # no send: the SDK's CommonClient
    listener.script = [
        as_json(ok(Data={"ServiceId": "svc-1"})),
        as_json(ok(SpecInfos=[])),
        as_json(error("ResourceNotFound", "gone")),  # the SDK raises for this one...
        as_json(error("FailedOperation", "busy"), "application/json; charset=utf-8"),  # ...not this
        (502, "text/html", b"<h1>bad gateway</h1>"),
        (200, "text/html", b"<html>portal</html>"),
    ]
    assert api.wedata("GetMLModelService", {"ServiceId": "svc-1"}) == {"ServiceId": "svc-1"}
    assert api.tione("DescribeModelServiceGroup", {"ServiceGroupId": "grp-1"}) == {"SpecInfos": []}
    wedata, tione = listener.requests
    assert wedata["body"] == {"WorkspaceId": "ws-7", "ServiceId": "svc-1"}
    assert wedata["headers"]["X-TC-Action"] == "GetMLModelService"
    assert wedata["headers"]["X-TC-Version"] == "2025-10-10"
    assert wedata["headers"]["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDstub/")
    assert "/wedata/tc3_request" in wedata["headers"]["Authorization"]
    assert tione["body"] == {"TiProjectId": "ws-7", "ServiceGroupId": "grp-1"}
    assert tione["headers"]["X-TC-Version"] == "2021-11-11"
    assert "/tione/tc3_request" in tione["headers"]["Authorization"]
    assert "stub-secret" not in json.dumps(listener.requests)

    # Error replies read the same whether or not the SDK recognised them.
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {"ServiceId": "svc-1"})
    assert (info.value.cloud_code, info.value.cloud_message, info.value.request_id) == (
        "ResourceNotFound",
        "gone",
        "req-err",
    )
    with pytest.raises(CloudApiError) as info:
        api.wedata("DeleteMLModelService", {"ServiceId": "svc-1"})
    assert (info.value.cloud_code, info.value.error_code, info.value.request_id) == (
        "FailedOperation",
        "INVALID_STATE",
        "req-err",
    )

    # What is not a cloud API reply is no reply.
    with pytest.raises(CloudApiError) as info:
        api.wedata("GetMLModelService", {})
    assert info.value.error_code == "INTERNAL_ERROR" and "<h1>bad gateway</h1>" in info.value.cloud_message
    with pytest.raises(CloudApiError, match="not a cloud API reply"):
        api.wedata("GetMLModelService", {})
    assert len(listener.requests) == 6
