"""Tencent Cloud API errors: one class per error code, raised anywhere below the wire and turned into
the error envelope in one place (the control plane's pipeline).

    ApiError                      the base; `code` is the Tencent error code the caller sees
    ├── AuthFailure               AuthFailure.* (signature, expiry, unknown key, malformed header)
    ├── UnauthorizedOperation     a known key acting outside its workspaces
    ├── InvalidAction, NoSuchVersion, RequestSizeLimitExceeded
    ├── InvalidParameter          the body as a whole (not JSON, not an object)
    ├── InvalidParameterValue     one field's value; the message starts with the field's name
    ├── MissingParameter, UnknownParameter
    ├── ResourceNotFound, ResourceInUse, LimitExceeded
    ├── FailedOperation           the request is fine but the resource's state refuses it
    ├── UnsupportedOperation
    └── InternalError             a bug; the pipeline logs it and shows only the RequestId
"""

from __future__ import annotations

# Codes as Tencent Cloud spells them; the client maps them to MLflow's.
INVALID_AUTHORIZATION = "AuthFailure.InvalidAuthorization"
SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"
SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
UNAUTHORIZED_OPERATION = "AuthFailure.UnauthorizedOperation"
INVALID_ACTION = "InvalidAction"
NO_SUCH_VERSION = "NoSuchVersion"
REQUEST_SIZE_LIMIT_EXCEEDED = "RequestSizeLimitExceeded"
INVALID_PARAMETER = "InvalidParameter"
MISSING_PARAMETER = "MissingParameter"
UNKNOWN_PARAMETER = "UnknownParameter"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"
RESOURCE_NOT_FOUND = "ResourceNotFound"
RESOURCE_IN_USE = "ResourceInUse"
LIMIT_EXCEEDED = "LimitExceeded"
FAILED_OPERATION = "FailedOperation"
INTERNAL_ERROR = "InternalError"
UNSUPPORTED_OPERATION = "UnsupportedOperation"


class ApiError(Exception):
    """A refused or failed action: a Tencent error code and a message for the caller."""

    code: str = INTERNAL_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class AuthFailure(ApiError):
    """The request is not signed as it must be; `code` says how (e.g. AuthFailure.SignatureFailure)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class UnauthorizedOperation(ApiError):
    code = UNAUTHORIZED_OPERATION


class InvalidAction(ApiError):
    code = INVALID_ACTION


class NoSuchVersion(ApiError):
    code = NO_SUCH_VERSION


class RequestSizeLimitExceeded(ApiError):
    code = REQUEST_SIZE_LIMIT_EXCEEDED


class InvalidParameter(ApiError):
    code = INVALID_PARAMETER


class InvalidParameterValue(ApiError):
    code = INVALID_PARAMETER_VALUE

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class MissingParameter(ApiError):
    code = MISSING_PARAMETER

    def __init__(self, field: str, problem: str = "is required") -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnknownParameter(ApiError):
    code = UNKNOWN_PARAMETER


class ResourceNotFound(ApiError):
    code = RESOURCE_NOT_FOUND

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} does not exist in this workspace")


class ResourceInUse(ApiError):
    code = RESOURCE_IN_USE


class LimitExceeded(ApiError):
    code = LIMIT_EXCEEDED


class FailedOperation(ApiError):
    code = FAILED_OPERATION


class UnsupportedOperation(ApiError):
    code = UNSUPPORTED_OPERATION


class InternalError(ApiError):
    code = INTERNAL_ERROR
