"""The server's parts wired together, and the lookups every handler shares."""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Iterable

from ...protocol.errors import not_found
from ..gateway import Gateway, RouteTable
from ..runtime import Fleet, LocalRuntime, reap_orphans
from ..settings import AccessKey, ServerSettings
from ..store import GroupRecord, ServiceRecord, Store
from .lifecycle import Lifecycle, new_pod_name

log = logging.getLogger("tcdeploy.server")


class Core:
    def __init__(self, settings: ServerSettings, keys: list[AccessKey], secret: bytes) -> None:
        self.settings = settings
        self.keys = {key.secret_id: key for key in keys}
        self.secret = secret
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.data_dir / "state.db")
        self.routes = RouteTable()
        self.runtime = LocalRuntime(settings.data_dir, on_change=self._on_replica_change)
        self.fleet = Fleet(self.runtime, drain=self.routes.drain, new_pod_name=new_pod_name)
        self.gateway = Gateway(self.routes, data_dir=settings.data_dir, usage=self._usage)
        self.lifecycle = Lifecycle(
            self.store, self.runtime, self.fleet, self.routes, settings, self.token_digests
        )

    async def start(self) -> None:
        reap_orphans(self.settings.data_dir)
        await self.gateway.start()
        await self.lifecycle.restore()

    async def close(self) -> None:
        await self.lifecycle.close()
        await self.runtime.close()
        await self.gateway.close()
        self.store.close()

    def _on_replica_change(self, state) -> None:
        self.lifecycle.on_replica_change(state)

    def _usage(self) -> Iterable[tuple[str, str, float, int]]:
        for state in self.runtime.states():
            usage = self.runtime.usage(state.pod_name)
            if usage is not None:
                yield state.service_id, state.pod_name, usage[0], usage[1]

    # ---- lookups scoped by workspace: another workspace's resources do not exist for the caller ----

    def group_in(self, workspace: str, ref: str, field: str = "ServiceGroupId") -> GroupRecord:
        group = self.store.group(ref)
        if group is None or group.workspace != workspace:
            group = self.store.group_by_name(workspace, ref)
        if group is None:
            raise not_found("service group", ref)
        return group

    def service_in(self, workspace: str, ref: str) -> ServiceRecord:
        service = self.store.service(ref)
        if service is None or service.workspace != workspace:
            service = self.store.service_by_name(workspace, ref)
        if service is None:
            raise not_found("service", ref)
        return service

    # ---- group tokens: values derived from the server secret, only digests stored ----------------

    def token_value(self, token_id: str) -> str:
        return hmac.new(self.secret, f"token:{token_id}".encode(), hashlib.sha256).hexdigest()

    def token_digests(self, group_id: str) -> list[str]:
        return [token.digest for token in self.store.tokens(group_id)]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
