"""Where a request goes when things change under it: waiting a moment for a replica that is on its
way back, and keeping retries apart, since one of them may be a request that kills its replica.

`RouteTable` makes the instant choices; this adds the time dimension. A request has one deadline
for all its waiting, so no combination of waits holds it longer than `replica_wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable

from .replies import held_too_many, not_found
from .routes import Group, NoRoute, Replica, RouteTable, Version
from .transport import ReplicaConnectionError

# Before retrying the only replica of a version: the runtime may be bringing it back.
RETRY_PAUSE = 0.2
# Requests held at once for services woken from zero; more get a 429 with Retry-After.
MAX_HELD = 256


class ReplicaPicker:
    def __init__(
        self,
        routes: RouteTable,
        replica_wait: float,
        wake: Callable[[str], None] | None = None,
        max_held: int = MAX_HELD,
    ) -> None:
        """`wake(service_id)`: asks the control plane for a replica of a version scaled to zero
        (`Version.wakes`); the request then waits for it like any, at most `max_held` at once."""
        if replica_wait < 0:
            raise ValueError(f"replica_wait must be 0 seconds or more, got {replica_wait}")
        self.routes = routes
        self.replica_wait = replica_wait
        self._wake = wake
        self.max_held = max_held
        self._held = 0
        self._lanes: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def deadline(self) -> float:
        return time.monotonic() + self.replica_wait

    async def version(self, group: Group, version: Version | None, deadline: float) -> tuple[Group, Version]:
        """The version to send to: `version` itself, or one of the group's by weight.

        With no ready replica where one is expected back (a replica restarting after a crash, a
        server restarting), wait for one until `deadline` instead of refusing at once. Raises
        NoRoute, or a GatewayError (404) if the group or service went away meanwhile.
        """
        while True:
            try:
                if version is None:
                    return group, self.routes.choose_version(group)
                self.routes.check_serves(version)
                return group, version
            except NoRoute:
                expected = (
                    self.routes.replica_expected(version)
                    if version is not None
                    else self.routes.replica_expected_in(group)
                )
                remaining = deadline - time.monotonic()
                if not expected or remaining <= 0:
                    raise
            waking = self._wake_versions(group, version)
            if waking and self._held >= self.max_held:
                raise held_too_many(self.max_held)
            self._held += waking
            try:
                await self.routes.wait_for_change(remaining)
            finally:
                self._held -= waking
            group, version = self._again(group, version)

    async def replica(self, service_id: str, failed: Replica | None, deadline: float) -> Replica:
        """The least busy ready replica other than `failed` (one the request got no answer from).

        None ready, and one expected: wait for one until `deadline`. `failed` still the only one
        listed: after a short pause it is tried again (a fresh connection may reach it). Raises
        ReplicaConnectionError when there is none to try.
        """
        paused = False
        while True:
            replica = self.routes.choose_replica(service_id, exclude=failed)
            if replica is not None and (replica is not failed or paused):
                return replica
            remaining = deadline - time.monotonic()
            if replica is None and (remaining <= 0 or not self._expects_replica(service_id)):
                raise ReplicaConnectionError("no ready replica left")
            if replica is failed:
                paused, remaining = True, min(remaining, RETRY_PAUSE)
            await self.routes.wait_for_change(remaining)

    @contextlib.asynccontextmanager
    async def retrying(self, service_id: str, deadline: float) -> AsyncIterator[None]:
        """Around a retry: the retries of a service go one at a time.

        A request whose replica died while it had it may be what killed it. Sent beside other
        retries, it would kill the next replica with them on it, and they would have no retry
        left; one after the other, it takes down only requests that still have theirs.
        """
        lane = self._lanes.get(service_id)
        if lane is None:
            lane = self._lanes[service_id] = asyncio.Lock()
        if lane.locked():
            try:
                await asyncio.wait_for(lane.acquire(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise ReplicaConnectionError("its turn to be retried did not come in time") from None
        else:
            await lane.acquire()
        try:
            yield
        finally:
            lane.release()

    def _wake_versions(self, group: Group, version: Version | None) -> int:
        """Wake the versions the request may go to that have no replica: 1 if any wakes."""
        candidates = [version] if version is not None else [v for v in group.versions.values() if v.weight > 0]
        waking = [v for v in candidates if v.wakes and not self.routes.ready_count(v.service_id)]
        for woken in waking:
            if self._wake is not None:
                self._wake(woken.service_id)
        return 1 if waking else 0

    def _expects_replica(self, service_id: str) -> bool:
        found = self.routes.service(service_id)
        return found is not None and self.routes.replica_expected(found[1])

    def _again(self, group: Group, version: Version | None) -> tuple[Group, Version | None]:
        """The group and version as the control plane has them now (they may have changed)."""
        if version is not None:
            found = self.routes.service(version.service_id)
            if found is None:
                raise not_found(f"service {version.service_id!r}")
            return found
        fresh = self.routes.group(group.group_id)
        if fresh is None:
            raise not_found(f"service group {group.group_id!r}")
        return fresh, None
