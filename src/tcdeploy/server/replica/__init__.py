"""The model server that runs inside each replica process.

Run one with `python -m tcdeploy.server.replica --model-uri URI (--uds PATH | --host H --port P)`,
or call `serve(...)`. Routes:

- `GET /ping`, `GET /health`: 200 `{"status": "ok"}` once the model is loaded.
- `GET /version`: `{"mlflow_version", "model_uri", "pod_name", "flavors", "loader_module",
  "signature"}`.
- `GET /stats`: counters since start: `requests` (requests handed to the batcher), `batches`
  (batches handed to the model), `rows`, `max_batch_rows`, `max_batch_requests`, `queued`,
  `batch_rows_buckets` (cumulative `[upper_bound_rows, batches]` pairs ending with `"+Inf"`, ready
  for a Prometheus histogram with `rows` as sum and `batches` as count), `batches_retried_alone`,
  `in_flight`, `bad_requests`, `model_errors`.
- `POST /predict`, `POST /invocations`: MLflow scoring bodies (`dataframe_split`,
  `dataframe_records`, `instances`, `inputs`, each with optional `params`, and the WeData
  `client_request_id`), or text/csv. 200 `{"predictions": …}` (plus `client_request_id` when
  sent);
  400 `{"error_code": "BAD_REQUEST", "message"}`; 500 `{"error_code": "MODEL_ERROR", "message"}`.

- `POST /v1/chat/completions` (a model that can chat, see `tcdeploy.protocol.chat`): OpenAI's chat
  request, answered whole or, with `stream: true`, as server-sent events from `predict_stream`
  (replica/chat.py); `/predict` then also takes MLflow's chat form `{"messages": …}`.

Every reply echoes an incoming `X-Request-Id` header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "ListenError",
    "ModelLoadError",
    "ReplicaApp",
    "build_app",
    "load_model",
    "serve",
    "uvicorn_config",
]

if TYPE_CHECKING:
    from tcdeploy.server.replica.app import ReplicaApp, build_app
    from tcdeploy.server.replica.server import (
        ListenError,
        ModelLoadError,
        load_model,
        serve,
        uvicorn_config,
    )


def __getattr__(name: str):
    # Lazy so `python -m tcdeploy.server.replica --help` (and bad arguments) answer before the
    # seconds it takes to import MLflow's model code.
    if name in ("ReplicaApp", "build_app"):
        from tcdeploy.server.replica import app

        return getattr(app, name)
    if name in ("ListenError", "ModelLoadError", "load_model", "serve", "uvicorn_config"):
        from tcdeploy.server.replica import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
