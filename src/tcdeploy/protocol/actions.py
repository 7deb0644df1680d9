"""The action catalogue: every action each API service answers, with its typed request model, and
the one function that validates a request body against its model.

wedata's models are built from the real schema (`protocol/wedata.py`), tione's follow the TI-ONE
SDK's models (`protocol/tione.py`). Models refuse unknown members so a typo is an error, not a
silently ignored setting. See docs/wire.md for what each action does.
"""

from __future__ import annotations

from pydantic import BaseModel

from . import errors, tione, wedata
from .apis import TIONE, WEDATA

Model = BaseModel

CATALOGUE: dict[str, dict[str, type[Model]]] = {WEDATA: dict(wedata.MODELS), TIONE: dict(tione.MODELS)}


_CODE_FOR_ERROR_TYPE = {
    "missing": errors.MISSING_PARAMETER,
    "extra_forbidden": errors.UNKNOWN_PARAMETER,
}
_VALUE_ERROR_TYPES = {
    "string_pattern_mismatch",
    "greater_than_equal",
    "less_than_equal",
    "greater_than",
    "less_than",
    "too_short",
    "too_long",
    "string_too_short",
    "string_too_long",
    "literal_error",
    "value_error",
}


def parse_request(model: type[Model], payload: object) -> Model:
    """Validate a request body against its model; refuse it with the field's name and the problem."""
    from pydantic import ValidationError

    from .errors import ApiError, InvalidParameter

    if not isinstance(payload, dict):
        raise InvalidParameter("the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        first = problems[0]
        if first["type"] in _CODE_FOR_ERROR_TYPE:
            code = _CODE_FOR_ERROR_TYPE[first["type"]]
        elif first["type"] in _VALUE_ERROR_TYPES:
            code = errors.INVALID_PARAMETER_VALUE
        else:
            code = errors.INVALID_PARAMETER
        message = "; ".join(f"{_field_path(e['loc'])}: {_describe(e)}" for e in problems[:5])
        raise ApiError(message, code=code) from None


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _describe(error: dict) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a parameter of this action"
    return error["msg"]
