"""The gateway's HTTP routes: the predict endpoints (endpoint.py), the chat routes of LLM services
(chat.py) and /metrics, registered on the data plane in one direction.

The predict endpoints are plain ASGI apps (Starlette routes them without wrapping them in a
Request/Response pair): they are on every prediction's path.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .chat import chat_routes
from .dataplane import Gateway
from .endpoint import PredictEndpoint


def gateway_routes(gateway: Gateway) -> list[BaseRoute]:
    """POST /groups/{group_id}/predict and /services/{service_id}/predict (and /invocations under
    both), GET /metrics: the data plane's routes, registered on it in one direction."""

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = []
    for prefix, param in (("/groups/{group_id}", "group_id"), ("/services/{service_id}", "service_id")):
        for path in ("/predict", "/invocations"):
            routes.append(Route(prefix + path, PredictEndpoint(gateway, param, path), methods=["POST"]))
    routes.extend(chat_routes(gateway))
    routes.append(Route("/metrics", metrics, methods=["GET"]))
    return routes
