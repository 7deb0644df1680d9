"""The model service's state and rules, free of any web framework and of the wire's models.

The wire layer (`control.api`) parses a request, calls one method here with plain arguments, and
shapes the reply from the records and snapshots it gets back. Every rule lives here — two services
at most per group, the survivor's weight after a delete, "auth on means a token exists", "an update
whose model fails to load keeps the previous spec" — so each can be tested without a request or a
replica process. Errors are `tcdeploy.protocol.errors` classes; the pipeline turns them into
envelopes.

`Backend` holds the lookups, groups and services here; its tokens (`tokens.py`) and what a service
shows of itself (`observing.py`) are mixins of their own, and `service_specs.py` is the one check of
a service's settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tcdeploy.protocol.chat import MACHINE_LEARNING
from tcdeploy.protocol.errors import (
    FailedOperation,
    InvalidParameterValue,
    LimitExceeded,
    MissingParameter,
    ResourceInUse,
    ResourceNotFound,
)
from tcdeploy.protocol.states import EventType, ServiceStatus

from ...gateway import Gateway
from ...runtime import LocalRuntime, ReplicaState
from ...store import Conflict, EventRecord, GroupRecord, ServiceRecord, Store
from .ids import new_group_id, service_id
from .instance_types import InstanceType, sized
from .monitor_history import MonitorHistory
from .observing import ObservingRules
from .reconciler import Reconciler
from .registry import ModelRef, ModelRegistry
from .scaling_specs import with_scaling
from .secrets import ServerSecret
from .service_specs import check_spec, member
from .service_types import group_type, settle_service_type
from .tokens import TokenRules

# The server's readable log: a service's first and last lifecycle steps here, the ones between
# in the reconciler (same logger).
log = logging.getLogger("tcdeploy.server")

S = ServiceStatus
MAX_SERVICES_PER_GROUP = 2
# Changing any of these needs new replicas; the rest apply at once.
ROLLING_FIELDS = ("InstanceType", "Resources", "BatchConfig", "ModelUri", "Env", "EnvVar", "RequestTimeoutSeconds")
SERVICE_ACTIONS = ("START", "STOP", "RESUME", "SCALE")


@dataclass(frozen=True)
class ServiceSnapshot:
    """A service as it is now: its record, its group, its replicas and (when asked) its events."""

    service: ServiceRecord
    group: GroupRecord
    pods: list[ReplicaState]
    events: list[EventRecord] | None = None

    @property
    def ready_replicas(self) -> int:
        return sum(1 for pod in self.pods if pod.ready)


@dataclass(frozen=True)
class GroupSnapshot:
    group: GroupRecord
    services: list[ServiceSnapshot]


class Backend(TokenRules, ObservingRules):
    def __init__(
        self,
        *,
        store: Store,
        runtime: LocalRuntime,
        reconciler: Reconciler,
        registry: ModelRegistry,
        gateway: Gateway,
        secret: ServerSecret,
        data_dir: Path,
        monitor_history: MonitorHistory | None = None,
    ) -> None:
        """Without `monitor_history`, monitoring reaches back the gateway's last hour only."""
        self.store = store
        self.runtime = runtime
        self.reconciler = reconciler
        self.registry = registry
        self.gateway = gateway
        self.secret = secret
        self.data_dir = data_dir
        self.monitor_history = monitor_history

    # ---- placement -----------------------------------------------------------------------------

    def placement_problem(self, size: InstanceType) -> str | None:
        """Why no replica of this size can run (None if one can): a runtime that places replicas
        on a cluster (Ray) knows its nodes; on this machine, a size over its memory cannot."""
        check = getattr(self.runtime, "placement_problem", None)
        if check is not None:
            return check(size.cpu_millicores, size.memory_mb)
        machine_mb = psutil.virtual_memory().total // 2**20
        return None if size.memory_mb <= machine_mb else f"this machine has {machine_mb} MiB of memory"

    def _refuse_unplaceable(self, spec: dict[str, Any], field: str) -> None:
        """Refused at create (and resize) when a cluster cannot place the size: Ray would leave
        the replicas pending for ever. One machine runs what it is asked to, as before."""
        if getattr(self.runtime, "placement_problem", None) is None:
            return
        problem = self.placement_problem(sized(spec))
        if problem is not None:
            raise InvalidParameterValue(field, f"{spec['InstanceType']} cannot be placed: {problem}")

    # ---- lookups, scoped by workspace: another workspace's resources do not exist for the caller ---

    def group(self, workspace: str, ref: str) -> GroupRecord:
        """A group by id or by name."""
        group = self.store.group(ref)
        if group is None or group.workspace != workspace:
            group = self.store.group_by_name(workspace, ref)
        if group is None:
            raise ResourceNotFound("service group", ref)
        return group

    def service(self, workspace: str, ref: str) -> ServiceRecord:
        """A service by id or by name."""
        service = self.store.service(ref)
        if service is None or service.workspace != workspace:
            service = self.store.service_by_name(workspace, ref)
        if service is None:
            raise ResourceNotFound("service", ref)
        return service

    def groups(self, workspace: str) -> list[GroupRecord]:
        return self.store.groups(workspace)

    def services(self, group_id: str) -> list[ServiceRecord]:
        return self.store.services(group_id)

    def snapshot(self, service: ServiceRecord, *, events: bool = False) -> ServiceSnapshot:
        service = self.store.service(service.id) or service
        group = self.store.group(service.group_id)
        return ServiceSnapshot(
            service,
            group,
            self.runtime.states(service.id),
            self.store.events(service.id) if events else None,
        )

    def group_snapshot(self, group: GroupRecord) -> GroupSnapshot:
        group = self.store.group(group.id) or group
        return GroupSnapshot(
            group, [ServiceSnapshot(s, group, self.runtime.states(s.id)) for s in self.store.services(group.id)]
        )

    # ---- groups -------------------------------------------------------------------------------

    def create_group(self, workspace: str, name: str, *, authorization: bool = False) -> GroupRecord:
        if self.store.group_by_name(workspace, name):
            raise ResourceInUse(f"ServiceGroupName: a group named {name!r} already exists")
        now = time.time()
        group = GroupRecord(new_group_id(), workspace, name, False, now, now)
        with _name_taken_as("ServiceGroupName"):
            self.store.insert_group(group)
        if authorization:
            self.enable_auth(group.id)
        self.reconciler.publish_group(group.id)
        return self.store.group(group.id)

    async def delete_group(self, workspace: str, ref: str) -> None:
        group = self.group(workspace, ref)
        for service in self.store.services(group.id):
            await self._remove(service)
        self.store.delete_group(group.id)
        self.reconciler.publish_group(group.id)

    def set_weights(
        self, workspace: str, group_ref: str, weights: list[tuple[str, int]], *, field: str = "Weights"
    ) -> GroupRecord:
        """Set the weights of some services of a group (by id or name); the rest keep theirs.
        `field` names the request's list in refusals (TI-ONE's `Weights`, wedata's `WeightEntries`)."""
        group = self.group(workspace, group_ref)
        services = {s.id: s for s in self.store.services(group.id)}
        by_name = {s.name: s.id for s in services.values()}
        new = {s.id: s.weight for s in services.values()}
        for i, (ref, weight) in enumerate(weights):
            service_id = ref if ref in services else by_name.get(ref)
            if service_id is None:
                raise InvalidParameterValue(f"{field}.{i}.ServiceId", f"{ref!r} is not a service of group {group.id}")
            new[service_id] = weight
        if sum(new.values()) <= 0:
            raise InvalidParameterValue(field, "at least one service of the group needs a weight above 0")
        with self.store.transaction():
            for service_id, weight in new.items():
                if services[service_id].weight != weight:
                    self.store.update_service(service_id, weight=weight)
            self.store.touch_group(group.id)
        self.reconciler.publish_group(group.id)
        return self.store.group(group.id)

    # ---- services -----------------------------------------------------------------------------

    async def create_service(
        self,
        workspace: str,
        name: str,
        *,
        spec: dict[str, Any],
        model: ModelRef,
        group_ref: str | None = None,
        authorization: bool = False,
        field: str = "Services.0",
    ) -> ServiceRecord:
        """Create a service (in `group_ref`, or in a new group of the same name) and start it.

        `spec` holds the service's settings under their wire names; `InstanceType` and `Replicas`
        are required. Refused before anything is written: a taken name, a full group, an unknown
        instance type, a model that does not exist."""
        spec = with_scaling(check_spec(spec, field), field, given=set(spec), now=time.time())
        self._refuse_unplaceable(spec, member(field, "InstanceType"))
        if self.store.service_by_name(workspace, name):
            raise ResourceInUse(f"ServiceName: a service named {name!r} already exists")
        group = self.group(workspace, group_ref) if group_ref else None
        if group is None and self.store.group_by_name(workspace, name):
            raise ResourceInUse(
                f"ServiceName: a service group named {name!r} already exists; "
                "pass its ServiceGroupId to add a version to it"
            )
        if group is not None and len(self.store.services(group.id)) >= MAX_SERVICES_PER_GROUP:
            raise LimitExceeded(
                f"service group {group.id} already holds {MAX_SERVICES_PER_GROUP} services; "
                "delete one before adding another"
            )
        model_uri = await self.registry.resolve(
            model, spec.get("CatalogName"), spec.get("SchemaName"), member(field, "MlModelInfo"), workspace
        )
        siblings = [s.spec for s in self.store.services(group.id)] if group is not None else []
        spec = {
            **spec,
            "ServiceType": await settle_service_type(
                self.registry, model_uri, spec.get("ServiceType"), group_type(siblings), group and group.id
            ),
        }
        now = time.time()
        with _name_taken_as("ServiceName"), self.store.transaction():
            if group is None:
                group = GroupRecord(new_group_id(), workspace, name, False, now, now)
                self.store.insert_group(group)
            first = not self.store.services(group.id)
            version = self.store.next_version(group.id)
            service = ServiceRecord(
                id=service_id(group.id, version),
                workspace=workspace,
                group_id=group.id,
                name=name,
                version=version,
                weight=100 if first else 0,
                status=S.CREATING,
                reason="",
                spec={**spec, "ModelUri": model_uri},
                created=now,
                updated=now,
            )
            self.store.insert_service(service)
            self.store.touch_group(group.id)
        if authorization:
            self.enable_auth(group.id)
        self.reconciler.record(
            service.id, EventType.NORMAL, "Creating", f"creating {service.replicas} replica(s) of {model_uri}"
        )
        log.info(
            "%s (%s): created in group %s, %d replica(s) of %s", name, service.id, group.id, service.replicas, model_uri
        )
        self.reconciler.publish_group(group.id)
        self.reconciler.apply(service.id)
        return self.store.service(service.id)

    async def update_service(
        self,
        workspace: str,
        ref: str,
        *,
        action: str | None = None,
        replicas: int | None = None,
        changes: dict[str, Any] | None = None,
        model: ModelRef | None = None,
        authorization: bool | None = None,
    ) -> ServiceRecord:
        """Change a service: a lifecycle `action` (STOP, RESUME, SCALE), or settings (`changes`
        under their wire names, a new `model`). Replicas roll only when what they run changes; if
        the new replicas cannot start, the reconciler puts the previous spec back."""
        service = self.service(workspace, ref)
        if service.status is S.CREATE_FAILED and action is None and model is None:
            raise FailedOperation(f"service {service.id} failed to create; update its model or delete it")
        if action is not None:
            spec = check_spec(self._spec_after_action(service, action, replicas))
        else:
            spec = await self._spec_after_changes(service, changes or {}, model)
        if sized(spec) != sized(service.spec):
            self._refuse_unplaceable(spec, "InstanceType")
        needs_replicas = (
            action is not None
            or any(spec.get(f) != service.spec.get(f) for f in ROLLING_FIELDS)
            or int(spec.get("Replicas", 1)) != service.replicas
        )
        with self.store.transaction():
            self.store.update_service(service.id, spec=spec)
            if authorization is not None:
                self.store.set_group_auth(service.group_id, authorization)
        if authorization:
            self.enable_auth(service.group_id)
        if needs_replicas:
            status = S.STOPPING if action == "STOP" else S.UPDATING
            if service.status is S.CREATE_FAILED:
                status = S.CREATING
            self.reconciler.set_status(service.id, status)
            self.reconciler.record(
                service.id, EventType.NORMAL, str(status), _describe(action, replicas, changes, model)
            )
            self.reconciler.apply(service.id, previous_spec=service.spec)
        self.reconciler.publish_group(service.group_id)
        return self.store.service(service.id)

    async def remove_service(self, workspace: str, ref: str) -> ServiceRecord:
        service = self.service(workspace, ref)
        await self._remove(service)
        return service

    @staticmethod
    def _spec_after_action(service: ServiceRecord, action: str, replicas: int | None) -> dict[str, Any]:
        spec = dict(service.spec)
        if action == "STOP":
            spec["Stopped"] = True
        elif action in ("START", "RESUME"):
            spec["Stopped"] = False
        elif action == "SCALE":
            if replicas is None:
                raise MissingParameter("Replicas", "is required with ServiceAction SCALE")
            spec["Replicas"] = replicas
        else:
            raise InvalidParameterValue("ServiceAction", f"must be one of {', '.join(SERVICE_ACTIONS)}")
        return spec

    async def _spec_after_changes(
        self,
        service: ServiceRecord,
        changes: dict[str, Any],
        model: ModelRef | None,
    ) -> dict[str, Any]:
        spec = with_scaling(check_spec({**service.spec, **changes}), "", given=set(changes), now=time.time())
        if model is not None:
            spec["ModelUri"] = await self.registry.resolve(
                model, spec.get("CatalogName"), spec.get("SchemaName"), "MlModelInfo", service.workspace
            )
            # A new model keeps the service's type: an LLM service's must still chat.
            kept = service.spec.get("ServiceType", MACHINE_LEARNING)
            spec["ServiceType"] = await settle_service_type(
                self.registry, spec["ModelUri"], kept, kept, service.group_id
            )
        return spec

    async def _remove(self, service: ServiceRecord) -> None:
        """Take the service out of routing, stop its replicas (draining), then forget it. The one
        left in the group takes all the traffic if it had none."""
        self.store.update_service(service.id, status=S.DELETING)
        log.info("%s (%s): %s -> %s", service.name, service.id, service.status, S.DELETING)
        self.reconciler.publish_group(service.group_id)
        await self.reconciler.remove(service.id)
        with self.store.transaction():
            self.store.delete_service(service.id)
            remaining = self.store.services(service.group_id)
            if len(remaining) == 1 and remaining[0].weight == 0:
                self.store.update_service(remaining[0].id, weight=100)
            self.store.touch_group(service.group_id)
        log.info("%s (%s): deleted", service.name, service.id)
        self.reconciler.publish_group(service.group_id)

    # ---- names and group settings ----------------------------------------------------------

    def name_taken(self, workspace: str, name: str) -> bool:
        """Whether a create under `name` would be refused for the name: a service or a group has it
        (a new service makes a group of its own name)."""
        return bool(self.store.service_by_name(workspace, name) or self.store.group_by_name(workspace, name))

    def update_group_settings(self, workspace: str, group_ref: str, changes: dict[str, Any]) -> GroupRecord:
        """Merge `changes` (wire names) into a group's stored settings."""
        group = self.group(workspace, group_ref)
        self.store.update_group(group.id, spec={**group.spec, **changes})
        return self.store.group(group.id)

    def set_monitor_config(self, workspace: str, group_ref: str, changes: dict[str, Any]) -> GroupRecord:
        """Store a group's monitor settings; `InferenceTableCollectionEnabled` acts: every service
        of the group starts (or stops) writing its requests to the inference table."""
        group = self.group(workspace, group_ref)
        now = time.time()
        config = {**group.spec.get("MonitorConfig", {"CreateTime": now}), **changes, "UpdateTime": now}
        table = changes.get("InferenceTableCollectionEnabled")
        with self.store.transaction():
            self.store.update_group(group.id, spec={**group.spec, "MonitorConfig": config})
            for service in self.store.services(group.id) if table is not None else ():
                self.store.update_service(service.id, spec={**service.spec, "InferenceTablePushEnable": table})
        self.reconciler.publish_group(group.id)
        return self.store.group(group.id)


@contextmanager
def _name_taken_as(field: str) -> Iterator[None]:
    """The store's Conflict (a name just taken by a racing request) as the caller sees it."""
    try:
        yield
    except Conflict:
        raise ResourceInUse(f"{field}: that name was just taken by another request") from None


def _describe(action: str | None, replicas: int | None, changes: dict | None, model: ModelRef | None) -> str:
    if action:
        return f"{action} requested" + (f" to {replicas} replica(s)" if replicas is not None else "")
    fields = sorted((changes or {}).keys() | ({"MlModelInfo"} if model else set()))
    return "update of " + ", ".join(fields)
