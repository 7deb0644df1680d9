"""The console as a Starlette app, mounted at `/console` by the composition root: the route
table of the login, the pages (`groups.py`, `observe.py`) and the vendored static files."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..control.backend import Backend
from ..settings import AccessKey
from . import groups, observe
from .pages import HERE, Console


def build_console(
    backend: Backend, keys: Mapping[str, AccessKey], *, public_url: str, own_hosts: set[str], root: str = "/console"
) -> Starlette:
    """The console app, to be mounted at `root` by the composition root."""
    console = Console(backend, keys, public_url=public_url, own_hosts=own_hosts, root=root)
    p = console.page
    routes = [
        Route("/", p(console.home)),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", p(console.logout), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *groups.routes(p),
        *observe.routes(p),
    ]
    return Starlette(routes=routes)
