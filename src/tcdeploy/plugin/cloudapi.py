"""Calls to the cloud API: retries, back-off and error translation over a one-method seam.

The seam is ``Send``: ``send(service, version, action, body) -> reply document``. ``SdkSend``, the
default, has the Tencent Cloud SDK's ``CommonClient`` sign (TC3-HMAC-SHA256, never by hand) and
post; tests hand in a plain function instead. The SDK has a retryer of its own
(``tencentcloud.common.retry.StandardRetryer``: network errors and ``RequestLimitExceeded*``, 1-2-4 s
back-off), but it is one policy per client profile; here the policy depends on the action (a
create must not be re-sent after a network error that may have hidden its success), so the loop
is ``CloudApi``'s, on top of the seam.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from tcdeploy.plugin.settings import Settings
from tcdeploy.protocol.apis import API_VERSIONS, TIONE, WEDATA

THROTTLED = ("RequestLimitExceeded",)
NETWORK_ERRORS = ("ClientNetworkError", "ServerNetworkError")
# Re-sending these after a lost reply could create a second resource (or fail on the first one's
# name): retry them only when the cloud said it throttled, i.e. did nothing.
NOT_REPEATABLE = frozenset(
    {
        "CreateMLModelServices",
        "CreateMLModelService",
        "CreateModelServiceGroup",
        "CreateModelServiceAuthToken",
    }
)
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 4.0
_MAX_MESSAGE = 2000
_ERRNO = re.compile(r"\[Errno -?\d+\][^\"')]*|Read timed out[^\"')]*")


def mlflow_code(name: str, fallback: str = "INTERNAL_ERROR") -> int:
    # Older MLflow releases lack some codes (e.g. UNAUTHENTICATED); fall back instead of failing.
    return getattr(databricks_pb2, name, getattr(databricks_pb2, fallback))


# Cloud error code prefix -> MLflow error code name; first match wins, so order matters.
_CODE_MAP: tuple[tuple[str, str, str], ...] = (
    ("ResourceNotFound", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_DOES_NOT_EXIST"),
    ("ResourceInUse", "RESOURCE_ALREADY_EXISTS", "RESOURCE_ALREADY_EXISTS"),
    ("InvalidParameter", "INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE"),
    ("InvalidParameterValue", "INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE"),
    ("MissingParameter", "INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE"),
    ("UnknownParameter", "INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE"),
    ("RequestSizeLimitExceeded", "INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE"),
    ("AuthFailure.UnauthorizedOperation", "PERMISSION_DENIED", "PERMISSION_DENIED"),
    ("UnauthorizedOperation", "PERMISSION_DENIED", "PERMISSION_DENIED"),
    ("AuthFailure", "UNAUTHENTICATED", "PERMISSION_DENIED"),
    ("RequestLimitExceeded", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"),
    ("LimitExceeded", "RESOURCE_LIMIT_EXCEEDED", "INVALID_STATE"),
    ("FailedOperation", "INVALID_STATE", "INVALID_STATE"),
    ("ResourceUnavailable", "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"),
    ("ResourceInsufficient", "RESOURCE_EXHAUSTED", "INTERNAL_ERROR"),
    ("InvalidAction", "NOT_IMPLEMENTED", "INVALID_PARAMETER_VALUE"),
    ("NoSuchVersion", "NOT_IMPLEMENTED", "INVALID_PARAMETER_VALUE"),
    ("UnsupportedOperation", "NOT_IMPLEMENTED", "INVALID_PARAMETER_VALUE"),
    ("ClientNetworkError", "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"),
    ("InternalError", "INTERNAL_ERROR", "INTERNAL_ERROR"),
)


def mlflow_error_code(cloud_code: str | None) -> int:
    """The MLflow error code for a Tencent Cloud error code (``ResourceNotFound.X`` too)."""
    for prefix, name, fallback in _CODE_MAP:
        if cloud_code and (cloud_code == prefix or cloud_code.startswith(prefix + ".")):
            return mlflow_code(name, fallback)
    return mlflow_code("INTERNAL_ERROR")


class CloudApiError(MlflowException):
    """A failed cloud action, with the cloud's code, message and RequestId kept as attributes."""

    def __init__(self, action: str, cloud_code: str, message: str, request_id: str | None) -> None:
        suffix = f" (RequestId: {request_id})" if request_id else ""
        super().__init__(f"{action}: {cloud_code}: {message}{suffix}", error_code=mlflow_error_code(cloud_code))
        self.action = action
        self.cloud_code = cloud_code
        self.cloud_message = message
        self.request_id = request_id

    def is_not_found(self) -> bool:
        return self.cloud_code == "ResourceNotFound" or self.cloud_code.startswith("ResourceNotFound.")


class NoReply(Exception):
    """No cloud API reply came back, so the action may or may not have been carried out.

    ``code`` is the SDK's word for it: ``ClientNetworkError`` (no connection, or it broke or timed
    out) or ``ServerNetworkError`` (something answered, but not with a cloud API reply: an HTTP
    error page, a body that is not the envelope).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Send(Protocol):
    """The seam: send one action and return the reply document, ``{"Response": {...}}``.

    Every reply is returned, error replies (``Response.Error``) too; ``NoReply`` is raised when
    there is none. ``version`` is the API version of ``service`` (``X-TC-Version``).
    """

    def __call__(self, service: str, version: str, action: str, body: dict[str, Any]) -> dict[str, Any]: ...


class SdkSend:
    """The default seam: one SDK ``CommonClient`` per API service signs and posts each action."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        try:
            return self._client(service, version).call_json(action, body)
        except TencentCloudSDKException as exc:
            code = exc.get_code()
            if code in NETWORK_ERRORS:
                raise NoReply(code, _text(exc.get_message())) from exc
            # The SDK raises for the error replies it recognises (an exact JSON content type) and
            # returns the others; give both back as the reply they were.
            return {
                "Response": {"Error": {"Code": code, "Message": exc.get_message()}, "RequestId": exc.get_request_id()}
            }
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, or JSON without "Response"
            raise NoReply("ServerNetworkError", f"the reply is not a cloud API reply ({exc!r})") from exc

    def _client(self, service: str, version: str) -> Any:
        if (service, version) not in self._clients:
            self._clients[service, version] = self._new_client(service, version)
        return self._clients[service, version]

    def _new_client(self, service: str, version: str) -> Any:
        from tencentcloud.common import credential
        from tencentcloud.common.common_client import CommonClient
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile

        target, creds = self.settings.target, self.settings.credentials
        http = HttpProfile(
            protocol=target.scheme,
            endpoint=target.endpoint_for(service),
            reqTimeout=max(1, round(self.settings.request_timeout)),
        )
        profile = ClientProfile(httpProfile=http, language="en-US")
        cred = credential.Credential(creds.secret_id, creds.secret_key, creds.token)
        client = CommonClient(service, version, cred, target.region, profile=profile)
        if target.is_local:
            _bypass_proxies(client)
        return client


class CloudApi:
    """Signed calls to the wedata and tione APIs of one target, scoped to one workspace.

    ``send`` is the seam (default: ``SdkSend``); ``sleep`` waits between attempts.
    """

    def __init__(
        self, settings: Settings, *, send: Send | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self._send: Send = send if send is not None else SdkSend(settings)
        self._sleep = sleep

    def __repr__(self) -> str:
        target = self.settings.target
        where = f"{target.scheme}://{target.wedata_endpoint}"
        return f"CloudApi({where}, workspace={self.settings.workspace_id!r})"

    def wedata(self, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a wedata action (``WorkspaceId`` added); return ``Response.Data``."""
        reply = self.call(WEDATA, action, {"WorkspaceId": self.settings.workspace_id, **(body or {})})
        data = reply.get("Data")
        return data if isinstance(data, dict) else {}

    def tione(self, action: str, body: dict[str, Any] | None = None, scoped: bool = True) -> dict[str, Any]:
        """Call a tione action (``TiProjectId`` added when ``scoped``); return ``Response``."""
        scope = {"TiProjectId": self.settings.workspace_id} if scoped else {}
        return self.call(TIONE, action, {**scope, **(body or {})})

    def call(self, service: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one action, retrying what may be retried; return ``Response`` without
        ``RequestId``, or raise ``CloudApiError``."""
        version = API_VERSIONS[service]
        attempts = max(1, self.settings.max_attempts)
        for attempt in range(attempts):
            last = attempt + 1 >= attempts
            try:
                return _response(action, self._send(service, version, action, body))
            except CloudApiError as exc:  # a reply: only "throttled" means nothing was done
                if last or not _is_throttling(exc.cloud_code):
                    raise
            except NoReply as exc:
                if last or action in NOT_REPEATABLE or _refused(exc):
                    raise self._no_reply_error(service, action, exc) from exc
            self._sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _no_reply_error(self, service: str, action: str, exc: NoReply) -> CloudApiError:
        target = self.settings.target
        where = f"{target.scheme}://{target.endpoint_for(service)}"
        hint = f" Is `tcdeploy server` running at {where}?" if target.is_self_hosted else ""
        code = "ClientNetworkError" if exc.code == "ClientNetworkError" else "InternalError"
        message = f"cannot get an answer from {where}: {_root_cause(_text(exc.message))}.{hint}"
        return CloudApiError(action, code, message, None)


def _response(action: str, document: Any) -> dict[str, Any]:
    """``Response`` of a reply document without ``RequestId``; an error reply raises."""
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        raise NoReply("ServerNetworkError", "the reply is not a cloud API reply (no 'Response' object)")
    error = response.get("Error")
    if isinstance(error, dict):
        code = str(error.get("Code") or "InternalError")
        raise CloudApiError(action, code, _text(error.get("Message")), response.get("RequestId"))
    return {key: value for key, value in response.items() if key != "RequestId"}


def _refused(exc: NoReply) -> bool:
    """Nothing listens there: the action was not sent, and asking again in a second or two
    would only keep the person waiting for the same answer."""
    return exc.code == "ClientNetworkError" and "Connection refused" in exc.message


def _is_throttling(code: str) -> bool:
    return any(code == c or code.startswith(c + ".") for c in THROTTLED)


def _text(message: Any) -> str:
    """A message as text of bounded length (the SDK hands HTTP error bodies over as bytes)."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message or "")[:_MAX_MESSAGE]


def _root_cause(message: str) -> str:
    """``[Errno 111] Connection refused`` out of a urllib3 retry chain, else the message."""
    match = _ERRNO.search(message)
    return match.group(0).strip() if match else message


def _bypass_proxies(client: Any) -> None:
    """Send loopback traffic directly even when HTTP(S)_PROXY is set for the outside world.

    The SDK reads the proxy from the environment and gives ``requests`` no way to skip it, so
    unset it on the session it built; the attributes are guarded in case a release renames them.
    """
    connection = getattr(getattr(client, "request", None), "conn", None)
    if connection is None:
        return
    connection.proxy = None
    session = getattr(connection, "_session", None)
    if session is not None:
        session.trust_env = False
