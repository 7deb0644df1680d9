"""The console's one way to read or change anything: the control API's own actions, called in the
server's process with the logged-in key's workspace.

Each call goes through the action table and the request models the API validates with, so a form
is checked by the same rules as a signed request, and a page shows the same figures an API client
reads: there is no second set of rules here.
"""

from __future__ import annotations

import uuid
from typing import Any

from tcdeploy.protocol.actions import parse_request
from tcdeploy.protocol.apis import TIONE, WEDATA
from tcdeploy.protocol.errors import UnauthorizedOperation

from ..control.api import ACTIONS
from ..control.api.context import Context
from ..control.backend import Backend
from .session import Session

__all__ = ["Actions", "TIONE", "WEDATA"]

REGION = "ap-guangzhou"  # what a console call reports as its region; nothing here depends on it


class Actions:
    def __init__(self, backend: Backend, public_url: str) -> None:
        self.backend = backend
        self.public_url = public_url

    async def call(self, session: Session, workspace: str, action: str, params: dict[str, Any], *, api: str = WEDATA):
        """The `Response` members of `action` (an `ApiError` when the API would answer one)."""
        if not session.allows(workspace):
            raise UnauthorizedOperation(f"this SecretId may not act in workspace {workspace!r}")
        model, handler = ACTIONS[(api, action)]
        body = {**params, ("TiProjectId" if api == TIONE else "WorkspaceId"): workspace}
        request = parse_request(model, body)
        ctx = Context(self.backend, workspace, REGION, str(uuid.uuid4()), self.public_url)
        return await handler(ctx, request)

    async def data(self, session: Session, workspace: str, action: str, params: dict[str, Any]) -> Any:
        """A wedata action's `Data`."""
        return (await self.call(session, workspace, action, params))["Data"]
