"""What every action handler is handed: the backend and who is asking, for which workspace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from tcdeploy.protocol.errors import MissingParameter

from ..backend import Backend

T = TypeVar("T")


def required(value: T | None, field: str) -> T:
    """A member the schema leaves optional but the action cannot do without."""
    if value is None or value == "":
        raise MissingParameter(field)
    return value


@dataclass(frozen=True)
class Context:
    backend: Backend
    workspace: str
    region: str
    request_id: str
    public_url: str  # the server's own base URL, for the URLs handed back

    def group_url(self, group_id: str) -> str:
        return f"{self.public_url}/groups/{group_id}/predict"

    def service_url(self, service_id: str) -> str:
        return f"{self.public_url}/services/{service_id}/predict"
