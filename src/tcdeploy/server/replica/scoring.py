"""Score a batch of requests with one `predict` call and split the predictions back.

Runs in the predict worker thread. A batch that fails, or whose predictions do not line up one
row per input row, is scored again one request at a time, so a bad request never fails its
neighbours and every caller gets the reply it would have got alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

from tcdeploy.server.replica.inputs import BadRequest, RequestParser, ScoringRequest, merge_payloads

_logger = logging.getLogger(__name__)

# MLflow reports input that does not fit the signature with these codes; anything else a model
# raises is the model's own failure.
_INPUT_ERROR_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST"})
_MAX_MESSAGE_CHARS = 2000
# The encoder MLflow's scoring server writes replies with, built once: same bytes, less work.
_ENCODER = NumpyEncoder()


class ModelError(Exception):
    """The model raised while predicting; the message is the model's."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The reply to one request: an HTTP status and a JSON body."""

    status: int
    body: bytes
    batch_rows: int = 0  # rows in the predict call that answered (for the gateway's metrics)
    completion_tokens: int | None = None  # a chat reply's, for the gateway's metrics
    warning: str | None = None  # an HTTP `Warning` value: what the reply leaves out of the request


class Scorer:
    def __init__(self, model: PyFuncModel, parser: RequestParser):
        self._model = model
        self._parser = parser
        self._merge = True  # off once the model shows its predictions are not one per row
        self.batches_retried_alone = 0

    def score(self, requests: list[ScoringRequest]) -> list[Outcome]:
        """One outcome per request, in order: bad input and model errors become outcomes."""
        if len(requests) > 1 and self._merge:
            outcomes = self._score_merged(requests)
            if outcomes is not None:
                return outcomes
            self.batches_retried_alone += 1
        return [self._score_alone(request) for request in requests]

    def _score_merged(self, requests: list[ScoringRequest]) -> list[Outcome] | None:
        try:
            predictions = self._predict(requests)
        except (BadRequest, ModelError):
            return None  # some request in the batch is at fault: find out which, one by one
        parts = split_rows(predictions, [request.rows for request in requests])
        if parts is None:
            self._merge = False
            _logger.warning("the model's predictions are not one per input row: requests are scored alone")
            return None
        total = sum(request.rows for request in requests)
        return [self._reply(request, part, total) for request, part in zip(requests, parts)]

    def _score_alone(self, request: ScoringRequest) -> Outcome:
        try:
            return self._reply(request, self._predict([request]), request.rows)
        except BadRequest as exc:
            return error_outcome(400, "BAD_REQUEST", str(exc))
        except ModelError as exc:
            _logger.warning("the model raised while predicting: %s", exc, exc_info=exc.__cause__)
            return error_outcome(500, "MODEL_ERROR", str(exc))

    def _predict(self, requests: list[ScoringRequest]) -> Any:
        """The predictions for all rows of `requests`, as JSON-ready Python values."""
        first = requests[0]
        data = self._parser.to_model_input(first.kind, merge_payloads(requests))
        try:
            predictions = self._model.predict(data, params=first.params)
        except MlflowException as exc:
            if exc.error_code in _INPUT_ERROR_CODES:
                raise BadRequest(_input_error_message(exc)) from None
            raise ModelError(f"{type(exc).__name__}: {exc.message}") from exc
        except Exception as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        # Converted once for the whole batch (as MLflow's scoring server converts each reply).
        return _get_jsonable_obj(predictions, pandas_orient="records")

    def _reply(self, request: ScoringRequest, predictions: Any, batch_rows: int) -> Outcome:
        reply: dict[str, Any] = {"predictions": predictions}
        if request.client_request_id is not None:
            reply["client_request_id"] = request.client_request_id
        try:
            body = _ENCODER.encode(reply)
        except (TypeError, ValueError) as exc:
            message = f"predictions are not JSON-serializable: {exc}"
            return error_outcome(500, "MODEL_ERROR", message)
        return Outcome(200, body.encode(), batch_rows)


def split_rows(predictions: Any, counts: list[int]) -> list[list] | None:
    """Cut JSON-ready batch predictions into one part per request; None if not one per row."""
    if not isinstance(predictions, list) or len(predictions) != sum(counts):
        return None
    parts, start = [], 0
    for count in counts:
        parts.append(predictions[start : start + count])
        start += count
    return parts


def error_outcome(status: int, error_code: str, message: str) -> Outcome:
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + " …(truncated)"
    return Outcome(status, json.dumps({"error_code": error_code, "message": message}).encode())


def _input_error_message(exc: MlflowException) -> str:
    # Schema enforcement wraps the real reason in a message that prints the whole input; the
    # reason itself is the exception it was raised from.
    cause = exc.__cause__ or exc.__context__
    if exc.message.startswith("Failed to enforce schema") and cause is not None:
        reason = cause.message if isinstance(cause, MlflowException) else str(cause)
        return f"input does not match the model's signature: {reason}"
    return exc.message
