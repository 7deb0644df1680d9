"""Waiting for a replica to settle, as both runtimes do it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime.spec import ReplicaState


async def wait_settled(
    pod_name: str, timeout: float, current: Callable[[], ReplicaState], changed: Callable[[], Awaitable]
) -> ReplicaState:
    """A copy of the replica's state once it is ready, failed, crash-looping or stopped.

    `current()` gives its state now, `changed()` returns at its next change. A model that cannot
    load is not an exception: the Failed state comes back. TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = current()
        if state.ready or state.crash_looping or state.phase in (PodPhase.FAILED, PodPhase.STOPPED):
            return state.copy()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"pod {pod_name} not ready after {timeout:g} s (phase {state.phase})")
        try:
            await asyncio.wait_for(changed(), remaining)
        except asyncio.TimeoutError:
            pass  # loop once more: the deadline check raises with the current phase
