"""Tencent Cloud API error codes, and the one exception every control-plane failure becomes."""
from __future__ import annotations

# Codes as Tencent Cloud spells them; the server answers with these, the client maps them to MLflow's.
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

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r})"


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(RESOURCE_NOT_FOUND, f"{kind} {ident!r} does not exist in this workspace")


def invalid_value(field: str, problem: str) -> ApiError:
    return ApiError(INVALID_PARAMETER_VALUE, f"{field}: {problem}")


def failed(message: str) -> ApiError:
    return ApiError(FAILED_OPERATION, message)
