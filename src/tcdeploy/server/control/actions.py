"""The action table: which handler answers each (API service, action), and what it is handed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ...protocol.actions import CATALOGUE, Model

if TYPE_CHECKING:
    from .core import Core

Handler = Callable[["Context", Any], Awaitable[dict]]


@dataclass(frozen=True)
class Context:
    """What a handler works with: the server's parts and who is asking, for which workspace."""

    core: "Core"
    workspace: str
    region: str
    request_id: str
    host: str  # the Host the caller used, for URLs handed back


_HANDLERS: dict[tuple[str, str], Handler] = {}


def action(service: str, model: type[Model]) -> Callable[[Handler], Handler]:
    """Register the handler of one action; its request model is the catalogue's."""
    if CATALOGUE[service].get(model.__name__) is not model:
        raise ValueError(f"{model.__name__} is not in the {service} catalogue")

    def register(handler: Handler) -> Handler:
        _HANDLERS[(service, model.__name__)] = handler
        return handler

    return register


def handler_for(service: str, action_name: str) -> tuple[type[Model], Handler] | None:
    handler = _HANDLERS.get((service, action_name))
    return (CATALOGUE[service][action_name], handler) if handler else None
