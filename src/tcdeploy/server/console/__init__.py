"""The web console at `/console`: WeData's model-service pages over the same actions as the API,
server-rendered (Starlette, Jinja2), with htmx and uPlot vendored under `static/vendor/`."""

from .app import build_console

__all__ = ["build_console"]
